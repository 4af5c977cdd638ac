// tests/apps patterns for PgJDBC (contract in ../apps_common.py), with the driver's defaults
// (extended protocol, prepareThreshold 5). With autocommit off PgJDBC sends BEGIN itself, in the
// same Sync as the transaction's first statement. Compiled at test time by run_apps.sh:
// javac -cp /usr/share/java/postgresql.jar.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

public final class JdbcApps {
  static final String CHECK = "SELECT current_setting('app.tenant_id', true) AS setting, "
      + "current_database() AS db, coalesce(string_agg(tenant_id, ',' ORDER BY id), '') AS tenants "
      + "FROM items WHERE id >= ?";

  static final class Failure extends Exception {
    Failure(String m) {
      super(m);
    }
  }

  interface Pattern {
    void run(Connection conn, String tenant, String[] step) throws Exception;
  }

  static String databaseOf(String tenant) {
    return tenant.equals("acme") ? "acme" : "app";
  }

  static void check(Connection conn, String tenant, String[] step) throws Exception {
    step[0] = "check";
    try (PreparedStatement ps = conn.prepareStatement(CHECK)) {
      ps.setInt(1, 0);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) throw new Failure("tenant " + tenant + ": the check returned no row");
        List<String> wrong = new ArrayList<>();
        String setting = rs.getString(1), db = rs.getString(2), tenants = rs.getString(3);
        if (!tenant.equals(setting)) wrong.add("current_setting(app.tenant_id) = '" + setting + "'");
        if (!databaseOf(tenant).equals(db)) {
          wrong.add("current_database() = '" + db + "', want '" + databaseOf(tenant) + "'");
        }
        String want = String.join(",", tenant, tenant, tenant);
        if (!want.equals(tenants)) wrong.add("rows of '" + tenants + "', want 3 of " + tenant);
        if (!wrong.isEmpty()) throw new Failure("tenant " + tenant + ": " + String.join("; ", wrong));
      }
    }
  }

  static void setConfig(Connection conn, String tenant, boolean local)
      throws SQLException {
    try (PreparedStatement ps =
        conn.prepareStatement("select set_config('app.tenant_id', ?, " + local + ")")) {
      ps.setString(1, tenant);
      ps.executeQuery().close();
    }
  }

  // Autocommit off (what Spring, Hibernate and HikariCP users run): BEGIN sent by the driver with
  // `select set_config('app.tenant_id', ?, true)`, the check, commit().
  static void autocommitOff(Connection conn, String tenant, String[] step) throws Exception {
    conn.setAutoCommit(false);
    step[0] = "BEGIN (driver) + set_config(?, true)";
    setConfig(conn, tenant, true);
    check(conn, tenant, step);
    step[0] = "commit";
    conn.commit();
  }

  // Autocommit on, tenant per session: set_config(?, false), then the check.
  static void session(Connection conn, String tenant, String[] step) throws Exception {
    step[0] = "set_config(?, false)";
    setConfig(conn, tenant, false);
    check(conn, tenant, step);
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new HashMap<>();
    args.put("host", "127.0.0.1");
    args.put("db-shared", "app");
    args.put("db-acme", "acme");
    args.put("only", "");
    for (int i = 0; i + 1 < argv.length; i += 2) args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    Set<String> only = new HashSet<>(Arrays.asList(args.get("only").split(",")));
    only.remove("");

    Map<String, Pattern> patterns = new java.util.LinkedHashMap<>();
    patterns.put("jdbc.autocommit_off.set_config_local", JdbcApps::autocommitOff);
    patterns.put("jdbc.session_set_config", JdbcApps::session);

    List<List<String>> cases = new ArrayList<>();
    cases.add(List.of("t007"));
    cases.add(List.of("acme"));
    cases.add(List.of("t012", "t013"));
    if (args.get("db-shared").equals(args.get("db-acme"))) cases.add(List.of("t012", "acme"));

    int passed = 0, failed = 0;
    for (Map.Entry<String, Pattern> p : patterns.entrySet()) {
      if (!only.isEmpty() && !only.contains(p.getKey())) continue;
      for (List<String> kase : cases) {
        String[] step = {"connect"};
        String problem = null;
        String db = kase.get(0).equals("acme") ? args.get("db-acme") : args.get("db-shared");
        Properties props = new Properties();
        props.setProperty("user", args.get("user"));
        props.setProperty("password", args.get("password"));
        props.setProperty("sslmode", "disable");
        props.setProperty("connectTimeout", "10");
        String url = "jdbc:postgresql://" + args.get("host") + ":" + args.get("port") + "/" + db;
        try (Connection conn = DriverManager.getConnection(url, props)) {
          for (String tenant : kase) {
            step[0] = "tenant " + tenant;
            p.getValue().run(conn, tenant, step);
          }
        } catch (Failure e) {
          problem = e.getMessage();
        } catch (SQLException e) {
          String msg = e.getMessage();
          if (e instanceof org.postgresql.util.PSQLException
              && ((org.postgresql.util.PSQLException) e).getServerErrorMessage() != null) {
            msg = ((org.postgresql.util.PSQLException) e).getServerErrorMessage().getMessage();
          }
          problem = "at " + step[0] + ": " + e.getSQLState() + " " + msg;
        }
        String label = p.getKey() + " [" + String.join(",", kase) + "]";
        if (problem == null) {
          passed++;
          System.out.println(label + ": ok");
        } else {
          failed++;
          System.out.println(label + ": FAIL: " + problem.replaceAll("\\s+", " "));
        }
      }
    }
    System.out.println("RESULT passed=" + passed + " failed=" + failed);
    System.exit(failed == 0 ? 0 : 1);
  }
}
