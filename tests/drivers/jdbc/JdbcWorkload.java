// The driver-suite workload for PgJDBC (tests/drivers; contract in workload_common.py).
//
// prepareThreshold=1 makes every PreparedStatement a named server statement (S_N) from its first
// execution. Even clients name their tenant with the `options` startup parameter
// (-c app.tenant_id=tXXX); odd clients connect without a tenant and run
// `select set_config('app.tenant_id', ?, false)` with the tenant bound, as a connection pool
// (HikariCP) user would per request, alternating between their own tenant and a partner tenant
// every round. With --tenant-after-connect every client logs in without a tenant, lets PgJDBC do
// its own connect-time set-up (SET extra_float_digits, SET application_name), and then names its
// tenant with that bound set_config (autocommit) as the first statement of each connection it
// opens, reconnects included; odd clients still alternate every round. Compiled at test time:
// javac -cp /usr/share/java/postgresql.jar.
import java.io.StringReader;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public final class JdbcWorkload {
  static final int ROWS_PER_TENANT = 3;
  static final int TENANTS = 50;
  static final double CANCEL_LIMIT_S = 4.0;
  static final int MAX_PROBLEM_LINES = 200;
  static final double GRACE_S = 15.0;  // past the deadline before a client counts as hung

  static final AtomicLong statements = new AtomicLong();
  static final AtomicInteger errors = new AtomicInteger();
  static final AtomicInteger leaks = new AtomicInteger();
  static final AtomicInteger lines = new AtomicInteger();

  static Map<String, String> args = new HashMap<>();
  static long deadlineNanos;

  static void problem(String kind, Object c, String text) {
    (kind.equals("LEAK") ? leaks : errors).incrementAndGet();
    if (lines.incrementAndGet() <= MAX_PROBLEM_LINES) {
      synchronized (System.out) {
        System.out.println(kind + " c" + c + ": " + text.replaceAll("\\s+", " "));
        System.out.flush();
      }
    }
  }

  static String tenantOf(int c) {
    return String.format("t%03d", c % TENANTS);
  }

  static boolean tenantAfterConnect() {
    return args.containsKey("tenant-after-connect");
  }

  static Connection connect(int c) throws SQLException {
    Properties p = new Properties();
    p.setProperty("user", args.get("user"));
    p.setProperty("password", args.get("password"));
    p.setProperty("prepareThreshold", "1");
    p.setProperty("sslmode", "disable");
    p.setProperty("connectTimeout", "10");
    if (c % 2 == 0 && !tenantAfterConnect()) {
      p.setProperty("options", "-c app.tenant_id=" + tenantOf(c));
    }
    String url = "jdbc:postgresql://" + args.get("host") + ":" + args.get("port") + "/"
        + args.get("dbname");
    Connection conn = DriverManager.getConnection(url, p);
    if (tenantAfterConnect()) {
      try {
        setTenant(conn, c, tenantOf(c));
      } catch (SQLException | RuntimeException e) {
        try {
          conn.close();
        } catch (SQLException e2) {
          e.addSuppressed(e2);
        }
        throw e;
      }
    }
    return conn;
  }

  /** The tenant of round k; odd clients switch with set_config (autocommit, outside a block). */
  static String roundTenant(Connection conn, int c, int k) throws SQLException {
    if (c % 2 == 0) return tenantOf(c);
    String t = (k % 2 == 0) ? tenantOf(c) : tenantOf(c + TENANTS / 2);
    setTenant(conn, c, t);
    return t;
  }

  /** A bound select set_config('app.tenant_id', ?, false), in autocommit. */
  static void setTenant(Connection conn, int c, String t) throws SQLException {
    try (PreparedStatement ps =
        conn.prepareStatement("select set_config('app.tenant_id', ?, false)")) {
      ps.setString(1, t);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        if (!t.equals(rs.getString(1))) problem("ERROR", c, "set_config returned " + rs.getString(1));
      }
    }
    statements.incrementAndGet();
  }

  static void readChecks(Connection conn, int c, String tenant) throws SQLException {
    List<String[]> rows = new ArrayList<>();
    try (PreparedStatement ps =
        conn.prepareStatement("SELECT tenant_id, id, body FROM items WHERE id >= ? ORDER BY id")) {
      ps.setInt(1, 0);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) rows.add(new String[] {rs.getString(1), rs.getString(2), rs.getString(3)});
      }
    }
    if (rows.size() != ROWS_PER_TENANT) {
      problem("LEAK", c, "tenant " + tenant + " saw " + rows.size() + " rows, want 3");
    } else {
      for (String[] r : rows) {
        if (!r[0].equals(tenant) || !r[2].endsWith("of " + tenant)) {
          problem("LEAK", c, "tenant " + tenant + " saw row of " + r[0] + ": " + r[2]);
          break;
        }
      }
    }
    try (PreparedStatement ps =
            conn.prepareStatement("SELECT current_setting('app.tenant_id', true)");
        ResultSet rs = ps.executeQuery()) {
      rs.next();
      if (!tenant.equals(rs.getString(1))) {
        problem("LEAK", c, "tenant " + tenant + ": current_setting = " + rs.getString(1));
      }
    }
    statements.addAndGet(2);
  }

  static void insertRoundtrip(Connection conn, int c, String tenant, int k) throws SQLException {
    int rid = 100000 + c * 1000 + k;
    String body = "driver row of " + tenant;
    conn.setAutoCommit(false);
    try {
      try (PreparedStatement ps =
          conn.prepareStatement("INSERT INTO items (tenant_id, id, body) VALUES (?, ?, ?)")) {
        ps.setString(1, tenant);
        ps.setInt(2, rid);
        ps.setString(3, body);
        ps.executeUpdate();
      }
      try (PreparedStatement ps =
          conn.prepareStatement("SELECT tenant_id, body FROM items WHERE id = ?")) {
        ps.setInt(1, rid);
        try (ResultSet rs = ps.executeQuery()) {
          List<String> got = new ArrayList<>();
          while (rs.next()) got.add(rs.getString(1) + "|" + rs.getString(2));
          if (!got.equals(List.of(tenant + "|" + body))) {
            problem("LEAK", c, "inserted row " + rid + " read back as " + got);
          }
        }
      }
      try (PreparedStatement ps = conn.prepareStatement("DELETE FROM items WHERE id = ?")) {
        ps.setInt(1, rid);
        int n = ps.executeUpdate();
        if (n != 1) problem("ERROR", c, "DELETE of row " + rid + " removed " + n + " rows");
      }
      conn.commit();
    } finally {
      conn.setAutoCommit(true);  // rolls back nothing after commit; after an exception see runRound
    }
    statements.addAndGet(3);
  }

  static void copyRoundtrip(Connection conn, int c, int k) throws Exception {
    String prefix = args.get("tag") + "-c" + c + "-i" + k;
    List<String> want = new ArrayList<>();
    StringBuilder data = new StringBuilder();
    for (int r = 0; r < 3; r++) {
      String line = c + "\t" + prefix + "-r" + r;
      want.add(line);
      data.append(line).append('\n');
    }
    CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
    long in = copy.copyIn("COPY copytest (a, b) FROM STDIN", new StringReader(data.toString()));
    if (in != 3) problem("ERROR", c, "COPY in reported " + in + " rows");
    StringWriter out = new StringWriter();
    copy.copyOut("COPY (SELECT a, b FROM copytest WHERE b LIKE '" + prefix + "-%' ORDER BY b) TO STDOUT",
        out);
    List<String> got = Arrays.asList(out.toString().split("\n"));
    if (!got.equals(want)) problem("ERROR", c, "COPY out gave " + got + ", want " + want);
    try (PreparedStatement ps = conn.prepareStatement("DELETE FROM copytest WHERE b LIKE ?")) {
      ps.setString(1, prefix + "-%");
      int n = ps.executeUpdate();
      if (n != 3) problem("ERROR", c, "DELETE of COPY rows removed " + n);
    }
    statements.addAndGet(3);
  }

  static void errorInTransaction(Connection conn, int c) throws SQLException {
    conn.setAutoCommit(false);
    try (Statement st = conn.createStatement()) {
      st.executeQuery("SELECT 1").close();
      try {
        st.executeQuery("SELECT 1/0").close();
        problem("ERROR", c, "SELECT 1/0 did not fail");
      } catch (SQLException e) {
        if (!"22012".equals(e.getSQLState())) throw e;
      }
      conn.rollback();
      try (ResultSet rs = st.executeQuery("SELECT 2")) {
        rs.next();
        if (rs.getInt(1) != 2) problem("ERROR", c, "SELECT 2 after ROLLBACK gave a wrong value");
      }
      conn.commit();
    } finally {
      conn.setAutoCommit(true);
    }
    statements.addAndGet(3);
  }

  static void cancelSleep(Connection conn, int c) throws Exception {
    long start = System.nanoTime();
    boolean canceled = false;
    int[] sent = {0};
    Exception[] failure = {null};
    try (PreparedStatement ps = conn.prepareStatement("SELECT pg_sleep(5)")) {
      Object lock = new Object();
      boolean[] done = {false};
      Thread canceller = new Thread(() -> {
        long delay = 400;
        synchronized (lock) {
          while (!done[0]) {
            try {
              lock.wait(delay);
            } catch (InterruptedException e) {
              return;
            }
            if (done[0]) return;
            try {
              ps.cancel();
              sent[0]++;
            } catch (SQLException e) {
              failure[0] = e;
              return;
            }
            delay = 1000;
          }
        }
      });
      canceller.start();
      try {
        ps.executeQuery().close();
      } catch (SQLException e) {
        if (!"57014".equals(e.getSQLState())) throw e;
        canceled = true;
      } finally {
        synchronized (lock) {
          done[0] = true;
          lock.notifyAll();
        }
        canceller.join();
      }
    }
    double elapsed = (System.nanoTime() - start) / 1e9;
    if (failure[0] != null) {
      problem("ERROR", c, "cancel() failed: " + failure[0]);
    } else if (!canceled || elapsed > CANCEL_LIMIT_S) {
      problem("ERROR", c, String.format("pg_sleep(5) not canceled (canceled=%s, %.1fs, %d cancels sent)",
          canceled, elapsed, sent[0]));
    }
    try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 3")) {
      rs.next();
      if (rs.getInt(1) != 3) problem("ERROR", c, "SELECT 3 after cancel gave a wrong value");
    }
    statements.addAndGet(2);
  }

  static void runClient(int c) {
    int iterations = Integer.parseInt(args.get("iterations"));
    Connection conn = null;
    try {
      conn = connect(c);
      for (int k = 0; k < iterations; k++) {
        if (System.nanoTime() > deadlineNanos) {
          problem("ERROR", c, "deadline passed at round " + k);
          return;
        }
        String step = "set_config";
        try {
          String tenant = roundTenant(conn, c, k);
          step = "read";
          readChecks(conn, c, tenant);
          step = "insert";
          insertRoundtrip(conn, c, tenant, k);
          step = "copy";
          if (k % 5 == c % 5) copyRoundtrip(conn, c, k);
          step = "error-in-transaction";
          if (k % 10 == c % 10) errorInTransaction(conn, c);
          step = "cancel";
          if (k == c % iterations) cancelSleep(conn, c);
        } catch (Exception e) {
          problem("ERROR", c, "round " + k + " " + step + ": " + e);
          if (conn.isClosed()) conn = connect(c);
        }
      }
    } catch (Exception e) {
      problem("ERROR", c, e.toString());
    } finally {
      try {
        if (conn != null) conn.close();
      } catch (SQLException e) {
        problem("ERROR", c, "close: " + e);
      }
    }
  }

  public static void main(String[] argv) throws Exception {
    args.put("host", "127.0.0.1");
    args.put("dbname", "app");
    args.put("clients", "50");
    args.put("iterations", "20");
    args.put("deadline", "60");
    for (int i = 0; i < argv.length; i++) {
      String key = argv[i].replaceFirst("^--", "");
      if (key.equals("tenant-after-connect")) {
        args.put(key, "true");
      } else if (i + 1 < argv.length) {
        args.put(key, argv[++i]);
      } else {
        throw new IllegalArgumentException("no value for " + argv[i]);
      }
    }
    for (String key : List.of("port", "user", "password", "tag")) {
      if (!args.containsKey(key)) throw new IllegalArgumentException("missing --" + key);
    }
    int clients = Integer.parseInt(args.get("clients"));
    deadlineNanos = System.nanoTime() + (long) (Double.parseDouble(args.get("deadline")) * 1e9);
    List<Thread> threads = new ArrayList<>();
    for (int c = 0; c < clients; c++) {
      final int client = c;
      Thread t = new Thread(() -> runClient(client));
      t.setDaemon(true);
      threads.add(t);
      t.start();
    }
    long hardStop = deadlineNanos + (long) (GRACE_S * 1e9);
    int stuck = 0;
    for (Thread t : threads) {
      t.join(Math.max(1, (hardStop - System.nanoTime()) / 1_000_000));
      if (t.isAlive()) stuck++;
    }
    if (stuck > 0) {
      problem("ERROR", "*", stuck + " clients still inside a statement " + GRACE_S + " s after the deadline");
    }
    System.out.println("RESULT clients=" + clients + " statements=" + statements.get() + " errors="
        + errors.get() + " leaks=" + leaks.get());
    System.exit(errors.get() == 0 && leaks.get() == 0 ? 0 : 1);
  }
}
