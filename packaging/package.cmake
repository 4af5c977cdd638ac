# `cmake --install` and the Debian package (`cpack -G DEB`, run by scripts/package); included by
# the top-level CMakeLists.txt. Where things go, with CMAKE_INSTALL_PREFIX=/usr (the package):
#
#   /usr/bin/pgtenant
#   /etc/pgtenant/pgtenant.yaml               packaging/pgtenant.yaml (a conffile in the package)
#   /usr/lib/systemd/system/pgtenant.service  docs/pgtenant.service
#   /usr/share/doc/pgtenant/                  README.md, docs/
#
# The config directory follows GNUInstallDirs: /etc for the prefix /usr, PREFIX/etc otherwise
# (/usr/local/etc/pgtenant with the default prefix). The installed unit names the binary and the
# config where they were installed. Set the prefix when configuring (-DCMAKE_INSTALL_PREFIX=...):
# these paths are fixed then, `cmake --install --prefix` does not change them.
include(GNUInstallDirs)

set(PGTENANT_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit is installed (a relative path is taken under CMAKE_INSTALL_PREFIX)")
set(PGTENANT_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/pgtenant")

install(TARGETS pgtenant RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The example config is installed only where there is none yet: `cmake --install` over a running
# installation must not overwrite the operator's file (dpkg handles that for the package).
install(CODE "
  set(pgtenant_config \"${PGTENANT_CONFIG_DIR}/pgtenant.yaml\")
  if(EXISTS \"\$ENV{DESTDIR}\${pgtenant_config}\")
    message(STATUS \"Keeping the existing \$ENV{DESTDIR}\${pgtenant_config}\")
  else()
    file(INSTALL DESTINATION \"${PGTENANT_CONFIG_DIR}\" TYPE FILE
         FILES \"${CMAKE_SOURCE_DIR}/packaging/pgtenant.yaml\")
  endif()
")

# docs/pgtenant.service is written for the package's paths; other prefixes get their own.
file(READ ${CMAKE_SOURCE_DIR}/docs/pgtenant.service pgtenant_unit)
string(REPLACE "/usr/bin/pgtenant" "${CMAKE_INSTALL_FULL_BINDIR}/pgtenant" pgtenant_unit "${pgtenant_unit}")
string(REPLACE "/etc/pgtenant" "${PGTENANT_CONFIG_DIR}" pgtenant_unit "${pgtenant_unit}")
string(REPLACE "/usr/share/doc/pgtenant" "${CMAKE_INSTALL_FULL_DOCDIR}" pgtenant_unit "${pgtenant_unit}")
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/packaging/pgtenant.service CONTENT "${pgtenant_unit}" @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/packaging/deb/postinst.in ${CMAKE_BINARY_DIR}/packaging/deb/postinst
               @ONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
               WORLD_READ WORLD_EXECUTE)
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/packaging/deb/conffiles
     CONTENT "${PGTENANT_CONFIG_DIR}/pgtenant.yaml\n" @ONLY)
set_property(DIRECTORY ${CMAKE_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/docs/pgtenant.service)
install(FILES ${CMAKE_BINARY_DIR}/packaging/pgtenant.service DESTINATION ${PGTENANT_SYSTEMD_UNIT_DIR})

file(GLOB pgtenant_docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${pgtenant_docs} ${CMAKE_SOURCE_DIR}/docs/grafana-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/packaging/pgtenant.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# ---- the Debian package ----
# Runtime dependencies by their Debian 12 package names (what the binary links: see
# `readelf -d pgtenant | grep NEEDED`); adduser for the maintainer script that creates the user.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pgtenant)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "PostgreSQL connection pooler for multi-tenant SaaS")
set(CPACK_PACKAGE_DESCRIPTION "pgtenant pools client connections onto a few PostgreSQL server \
connections, sends each tenant's transactions to its pool (a shared row-level-security database or \
a dedicated one) and sets the tenant variable on the server connection before they run.")
set(PGTENANT_PACKAGE_MAINTAINER "pgtenant developers <pgtenant@localhost>" CACHE STRING
    "The Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT "${PGTENANT_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.36), libstdc++6 (>= 12), libgcc-s1, libuv1 (>= 1.44), libssl3 (>= 3.0), \
libyaml-cpp0.7, libprometheus-cpp-core1.0, libprometheus-cpp-pull1.0, libcurl4 (>= 7.88), adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/packaging/deb/postinst
    ${CMAKE_SOURCE_DIR}/packaging/deb/prerm
    ${CMAKE_SOURCE_DIR}/packaging/deb/postrm
    ${CMAKE_BINARY_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# /etc/pgtenant is outside the prefix: stage everything under DESTDIR.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
include(CPack)
