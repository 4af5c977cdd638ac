// Load driver of bench/scale.sh (issue "A thousand tenants", benchmark "Scale").
//
// One thread, libpq non-blocking connections multiplexed with epoll. CLIENTS clients, each bound
// to one tenant for its life: the first SHARED_PCT % are "shared" clients (tenants s0001..sNNNN of
// the shared RLS database), the rest "dedicated" (tenants d0001..dNNNN, one database each). Each
// client's tenant rank is drawn from Zipf(s) over the side's tenants with a fixed seed, so every
// target gets the same assignment. Closed loop, optional think time; one round trip per
// transaction (simple protocol):
//   dedicated: SELECT v FROM items WHERE id = K
//   shared:    BEGIN; SET LOCAL app.tenant_id = 'sNNNN'; SELECT v FROM items WHERE id = K; COMMIT
// Logins: --target pgtenant names the tenant with options=-c app.tenant_id=ID (database given as
// below but ignored by pgtenant); --target pgbouncer connects to database tenant_dNNNN / shared.
//
// Phases: ramp (clients connect, at most --connect-concurrency logins in flight, in a shuffled
// order; each starts its loop when logged in) until all are connected or --ramp-max seconds, then
// --warm seconds, then the measured window of --duration seconds, then --tail seconds of load
// (the runner reloads pgtenant then), then every connection is closed.
// While running it samples every 200 ms: server connections in pg_stat_activity (client
// backends, its own sampling session excluded) through a direct connection (--sample-conninfo),
// and the pooler's VmRSS (--pooler-pid). CPU per party (pooler, postgres incl. exited backends,
// this driver, machine) is read from /proc at the window's start and end.
// Writes one JSON object (--out) with the figures; progress goes to stderr, and phase markers
// ("window_end EPOCH") to --status.
//
//   scale_driver --target pgtenant --port 6432 --out r.json [--clients 5000 --duration 30 ...]
#include <libpq-fe.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
double WallNow() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Log-linear latency histogram in microseconds: exact below 128 us, then 64 buckets per power of
// two (under 1.6 % error).
class Histogram {
 public:
  Histogram() : b_(128 + 64 * 40, 0) {}
  void Add(uint64_t us) {
    b_[Index(us)]++;
    n_++;
    max_ = std::max(max_, us);
  }
  void Merge(const Histogram& o) {
    for (size_t i = 0; i < b_.size(); i++) b_[i] += o.b_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return n_; }
  uint64_t max() const { return max_; }
  double Quantile(double q) const {  // in us, the bucket's middle
    if (n_ == 0) return -1;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * n_));
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < b_.size(); i++) {
      seen += b_[i];
      if (seen >= rank) return std::min<double>(Value(i), max_);
    }
    return max_;
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < 128) return v;
    int lg = 63 - __builtin_clzll(v);
    int shift = lg - 6;
    uint64_t top = v >> shift;  // 64..127
    size_t i = 128 + (shift - 1) * 64 + (top - 64);
    return std::min<size_t>(i, 128 + 64 * 40 - 1);
  }
  static double Value(size_t i) {
    if (i < 128) return i;
    int shift = (i - 128) / 64 + 1;
    uint64_t top = (i - 128) % 64 + 64;
    return static_cast<double>(top << shift) + (1ull << shift) / 2.0;
  }
  std::vector<uint64_t> b_;
  uint64_t n_ = 0, max_ = 0;
};

enum class State { kWaitConnect, kConnecting, kThink, kBusy, kDone };

struct Client {
  int idx = 0;
  bool shared = false;
  int tenant = 0;  // 1-based rank within its side
  PGconn* conn = nullptr;
  int fd = -1;
  uint32_t events = 0;
  State state = State::kWaitConnect;
  double t_start = 0;  // of the transaction in flight / of the login
  bool ok_result = true;
  bool rolling_back = false;  // a ROLLBACK after an error left the block open
  double wake_at = 0;         // the timer that counts (older ones are stale)
  std::string err_key;
  bool ever_connected = false;
  uint64_t txns_window = 0, txns_total = 0, errors = 0;
};

struct Options {
  std::string host = "127.0.0.1", user = "app", target = "pgtenant", out, status, sample_conninfo;
  int port = 6432, clients = 5000, tenants = 1000, shared_pct = 50, rows = 100, connect_concurrency = 100;
  double zipf_s = 1.0, think_ms = 0, duration = 30, ramp_max = 120, warm = 2, tail = 0, connect_timeout = 30;
  uint64_t seed = 18;
  int pooler_pid = 0, postmaster_pid = 0;
};

std::string Arg(int argc, char** argv, int& i) {
  std::string a = argv[i];
  auto eq = a.find('=');
  if (eq != std::string::npos) return a.substr(eq + 1);
  if (i + 1 >= argc) {
    fprintf(stderr, "missing value for %s\n", argv[i]);
    exit(2);
  }
  return argv[++i];
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    std::string k = a.substr(0, a.find('='));
    if (k == "--host") o.host = Arg(argc, argv, i);
    else if (k == "--port") o.port = std::stoi(Arg(argc, argv, i));
    else if (k == "--user") o.user = Arg(argc, argv, i);
    else if (k == "--target") o.target = Arg(argc, argv, i);
    else if (k == "--out") o.out = Arg(argc, argv, i);
    else if (k == "--status") o.status = Arg(argc, argv, i);
    else if (k == "--sample-conninfo") o.sample_conninfo = Arg(argc, argv, i);
    else if (k == "--clients") o.clients = std::stoi(Arg(argc, argv, i));
    else if (k == "--tenants") o.tenants = std::stoi(Arg(argc, argv, i));
    else if (k == "--shared-pct") o.shared_pct = std::stoi(Arg(argc, argv, i));
    else if (k == "--rows") o.rows = std::stoi(Arg(argc, argv, i));
    else if (k == "--connect-concurrency") o.connect_concurrency = std::stoi(Arg(argc, argv, i));
    else if (k == "--zipf-s") o.zipf_s = std::stod(Arg(argc, argv, i));
    else if (k == "--think-ms") o.think_ms = std::stod(Arg(argc, argv, i));
    else if (k == "--duration") o.duration = std::stod(Arg(argc, argv, i));
    else if (k == "--ramp-max") o.ramp_max = std::stod(Arg(argc, argv, i));
    else if (k == "--warm") o.warm = std::stod(Arg(argc, argv, i));
    else if (k == "--tail") o.tail = std::stod(Arg(argc, argv, i));
    else if (k == "--connect-timeout") o.connect_timeout = std::stod(Arg(argc, argv, i));
    else if (k == "--seed") o.seed = std::stoull(Arg(argc, argv, i));
    else if (k == "--pooler-pid") o.pooler_pid = std::stoi(Arg(argc, argv, i));
    else if (k == "--postmaster-pid") o.postmaster_pid = std::stoi(Arg(argc, argv, i));
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      exit(2);
    }
  }
  if (o.target != "pgtenant" && o.target != "pgbouncer") {
    fprintf(stderr, "--target must be pgtenant or pgbouncer\n");
    exit(2);
  }
  return o;
}

std::string TenantId(bool shared, int rank) {
  char b[16];
  snprintf(b, sizeof b, "%c%04d", shared ? 's' : 'd', rank);
  return b;
}

// An error's kind: SQLSTATE plus the first line of the message with digits folded, so
// "pool dedicated/d0042" and "... d0913" count together.
std::string ErrKey(const char* sqlstate, const char* msg) {
  std::string m = msg ? msg : "";
  auto nl = m.find('\n');
  if (nl != std::string::npos) m = m.substr(0, nl);
  std::string f;
  bool lastd = false;
  for (char c : m) {
    if (c >= '0' && c <= '9') {
      if (!lastd) f += '#';
      lastd = true;
    } else {
      f += c;
      lastd = false;
    }
    if (f.size() > 120) break;
  }
  return std::string(sqlstate && *sqlstate ? sqlstate : "-----") + " " + f;
}

std::string JsonStr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o + "\"";
}

// ---------------------------------------------------------------- /proc
long long ProcCpu(int pid, bool with_children) {  // jiffies
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  std::ifstream f(path);
  std::string s;
  if (!std::getline(f, s)) return -1;
  auto p = s.rfind(')');
  if (p == std::string::npos) return -1;
  std::istringstream in(s.substr(p + 2));
  std::vector<std::string> v;
  std::string t;
  while (in >> t) v.push_back(t);
  // v[0] state, v[1] ppid, v[11] utime, v[12] stime, v[13] cutime, v[14] cstime
  if (v.size() < 15) return -1;
  long long c = std::stoll(v[11]) + std::stoll(v[12]);
  if (with_children) c += std::stoll(v[13]) + std::stoll(v[14]);
  return c;
}
int ProcPpid(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  std::ifstream f(path);
  std::string s;
  if (!std::getline(f, s)) return -1;
  auto p = s.rfind(')');
  if (p == std::string::npos) return -1;
  int ppid = -1;
  char st;
  sscanf(s.c_str() + p + 2, "%c %d", &st, &ppid);
  return ppid;
}
// postgres: the postmaster (with its reaped children: exited backends) + its live children
long long PostgresCpu(int postmaster) {
  if (postmaster <= 0) return -1;
  long long c = ProcCpu(postmaster, true);
  DIR* d = opendir("/proc");
  if (!d) return c;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int pid = atoi(e->d_name);
    if (ProcPpid(pid) == postmaster) {
      long long x = ProcCpu(pid, false);
      if (x > 0) c += x;
    }
  }
  closedir(d);
  return c;
}
void MachineCpu(long long* busy, long long* total) {
  std::ifstream f("/proc/stat");
  std::string cpu;
  long long v[8] = {0};
  f >> cpu;
  for (auto& x : v) f >> x;
  *total = 0;
  for (auto x : v) *total += x;
  *busy = *total - v[3] - v[4];
}
long ProcStatusKb(int pid, const char* key) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  std::ifstream f(path);
  std::string line;
  size_t kl = strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, kl, key) == 0 && line.size() > kl && line[kl] == ':') return atol(line.c_str() + kl + 1);
  }
  return -1;
}

struct CpuSnap {
  double t = 0;
  long long pooler = -1, pg = -1, self = -1, busy = 0, total = 0;
};
CpuSnap TakeCpu(const Options& o) {
  CpuSnap s;
  s.t = Now();
  if (o.pooler_pid > 0) s.pooler = ProcCpu(o.pooler_pid, true);
  s.pg = PostgresCpu(o.postmaster_pid);
  s.self = ProcCpu(getpid(), true);
  MachineCpu(&s.busy, &s.total);
  return s;
}

volatile sig_atomic_t g_stop = 0;

class Driver {
 public:
  explicit Driver(Options o) : o_(std::move(o)) {}
  int Run();

 private:
  void Watch(Client& c, uint32_t ev);
  void Unwatch(Client& c);
  void StartConnect(Client& c);
  void OnConnectEvent(Client& c);
  void SendTxn(Client& c);
  void OnBusyEvent(Client& c);
  void Fail(Client& c, const std::string& key, bool connect);
  void Schedule(Client& c, double at) {
    c.wake_at = at;
    timers_.push({at, c.idx});
  }
  void Sample();
  void StartSampleConn();
  void WriteOut(double t0);
  void Status(const std::string& s) {
    if (o_.status.empty()) return;
    FILE* f = fopen(o_.status.c_str(), "a");
    if (f) {
      fprintf(f, "%s %.3f\n", s.c_str(), WallNow());
      fclose(f);
    }
  }
  bool InWindow(double t) const { return window_open_ && t >= w0_ && t < w1_; }

  Options o_;
  int ep_ = -1;
  std::vector<Client> cl_;
  std::vector<int> connect_order_;
  size_t next_connect_ = 0;
  int connecting_ = 0, connected_ = 0;
  std::priority_queue<std::pair<double, int>, std::vector<std::pair<double, int>>, std::greater<>> timers_;
  std::mt19937_64 rng_;
  Histogram h_shared_, h_ded_;
  std::map<std::string, uint64_t> errors_window_, errors_all_, connect_errors_;
  uint64_t disconnects_ = 0, reconnects_ = 0;
  bool window_open_ = false;
  double w0_ = 1e300, w1_ = 1e300, all_connected_at_ = -1;
  std::vector<uint64_t> per_second_;  // completed transactions per second since start
  double t_begin_ = 0;
  // sampling
  PGconn* sconn_ = nullptr;
  double next_sample_ = 0;
  int smax_total_ = -1, smax_shared_ = -1, smax_window_ = -1;
  std::vector<std::string> samples_;  // "[t,total,shared,rss_kb]"
  long rss_max_kb_ = -1, rss_window_max_kb_ = -1;
  long long sessions_w0_ = -1, sessions_w1_ = -1;
  double sessions_t0_ = 0, sessions_t1_ = 0;
  CpuSnap cpu0_, cpu1_;
  double oldest_inflight_at_end_ = 0;
  int inflight_at_end_ = 0;
};

void Driver::Watch(Client& c, uint32_t ev) {
  int fd = PQsocket(c.conn);
  if (fd != c.fd) {
    if (c.fd >= 0) epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    c.fd = fd;
    c.events = 0;
    if (fd < 0) return;
    epoll_event e{};
    e.events = ev;
    e.data.u32 = c.idx;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e);
    c.events = ev;
    return;
  }
  if (ev != c.events && fd >= 0) {
    epoll_event e{};
    e.events = ev;
    e.data.u32 = c.idx;
    epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &e);
    c.events = ev;
  }
}

void Driver::Unwatch(Client& c) {
  if (c.fd >= 0) epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
  c.fd = -1;
  c.events = 0;
}

void Driver::StartConnect(Client& c) {
  std::string tid = TenantId(c.shared, c.tenant);
  std::string db = c.shared ? "shared" : "tenant_" + tid;
  std::string port = std::to_string(o_.port);
  std::string opts = "-c app.tenant_id=" + tid;
  const char* keys[8];
  const char* vals[8];
  int n = 0;
  keys[n] = "host", vals[n++] = o_.host.c_str();
  keys[n] = "port", vals[n++] = port.c_str();
  keys[n] = "dbname", vals[n++] = db.c_str();
  keys[n] = "user", vals[n++] = o_.user.c_str();
  keys[n] = "sslmode", vals[n++] = "disable";
  keys[n] = "gssencmode", vals[n++] = "disable";
  if (o_.target == "pgtenant") keys[n] = "options", vals[n++] = opts.c_str();
  keys[n] = nullptr, vals[n] = nullptr;
  c.conn = PQconnectStartParams(keys, vals, 0);
  c.t_start = Now();
  c.fd = -1;
  if (!c.conn || PQstatus(c.conn) == CONNECTION_BAD) {
    Fail(c, std::string("connect: ") + (c.conn ? PQerrorMessage(c.conn) : "out of memory"), true);
    return;
  }
  PQsetnonblocking(c.conn, 1);
  c.state = State::kConnecting;
  connecting_++;
  Watch(c, EPOLLOUT);
}

void Driver::OnConnectEvent(Client& c) {
  PostgresPollingStatusType st = PQconnectPoll(c.conn);
  if (st == PGRES_POLLING_FAILED) {
    connecting_--;
    std::string m = PQerrorMessage(c.conn);
    // libpq's message: 'connection to server at "..." failed: FATAL:  ...'
    auto p = m.find("failed: ");
    if (p != std::string::npos) m = m.substr(p + 8);
    Fail(c, "connect: " + m, true);
    return;
  }
  if (st == PGRES_POLLING_OK) {
    connecting_--;
    connected_++;
    c.ever_connected = true;
    c.state = State::kThink;
    Watch(c, EPOLLIN);
    SendTxn(c);
    return;
  }
  Watch(c, st == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT);
}

void Driver::SendTxn(Client& c) {
  if (g_stop) return;
  std::uniform_int_distribution<int> row(1, o_.rows);
  char q[200];
  if (c.shared) {
    snprintf(q, sizeof q, "BEGIN; SET LOCAL app.tenant_id = 's%04d'; SELECT v FROM items WHERE id = %d; COMMIT",
             c.tenant, row(rng_));
  } else {
    snprintf(q, sizeof q, "SELECT v FROM items WHERE id = %d", row(rng_));
  }
  c.t_start = Now();
  c.ok_result = true;
  c.err_key.clear();
  if (!PQsendQuery(c.conn, q)) {
    Fail(c, std::string("send: ") + PQerrorMessage(c.conn), false);
    return;
  }
  c.state = State::kBusy;
  int fl = PQflush(c.conn);
  Watch(c, fl == 1 ? (EPOLLIN | EPOLLOUT) : EPOLLIN);
}

void Driver::OnBusyEvent(Client& c) {
  if (c.events & EPOLLOUT) {
    int fl = PQflush(c.conn);
    if (fl < 0) {
      Fail(c, std::string("flush: ") + PQerrorMessage(c.conn), false);
      return;
    }
    if (fl == 0) Watch(c, EPOLLIN);
  }
  if (!PQconsumeInput(c.conn)) {
    Fail(c, std::string("lost: ") + PQerrorMessage(c.conn), false);
    return;
  }
  while (!PQisBusy(c.conn)) {
    PGresult* r = PQgetResult(c.conn);
    if (r == nullptr) {
      double now = Now();
      if (c.rolling_back) {
        c.rolling_back = false;
      } else if (c.ok_result) {
        uint64_t us = static_cast<uint64_t>((now - c.t_start) * 1e6);
        c.txns_total++;
        size_t sec = static_cast<size_t>(now - t_begin_);
        if (sec >= per_second_.size()) per_second_.resize(sec + 1, 0);
        per_second_[sec]++;
        if (InWindow(now)) {
          c.txns_window++;
          (c.shared ? h_shared_ : h_ded_).Add(us);
        }
      } else {
        c.errors++;
        errors_all_[c.err_key]++;
        if (InWindow(now)) errors_window_[c.err_key]++;
      }
      if (PQstatus(c.conn) == CONNECTION_BAD) {
        Fail(c, "lost: " + std::string(PQerrorMessage(c.conn)), false);
        return;
      }
      if (PQtransactionStatus(c.conn) != PQTRANS_IDLE && !c.rolling_back) {
        // an error inside BEGIN ... COMMIT leaves the block open: end it first (not counted)
        c.rolling_back = true;
        if (!PQsendQuery(c.conn, "ROLLBACK")) {
          Fail(c, std::string("send: ") + PQerrorMessage(c.conn), false);
          return;
        }
        PQflush(c.conn);
        return;
      }
      if (o_.think_ms > 0) {
        c.state = State::kThink;
        std::exponential_distribution<double> th(1.0 / o_.think_ms);
        Schedule(c, now + th(rng_) / 1000.0);
      } else {
        SendTxn(c);
      }
      return;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
      if (c.ok_result) c.err_key = ErrKey(PQresultErrorField(r, PG_DIAG_SQLSTATE), PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : PQresultErrorMessage(r));
      c.ok_result = false;
    }
    PQclear(r);
  }
}

void Driver::Fail(Client& c, const std::string& what, bool connect) {
  std::string key = ErrKey("", what.c_str());
  key = key.substr(6);  // no SQLSTATE
  double now = Now();
  if (connect) {
    connect_errors_[key]++;
  } else {
    disconnects_++;
    connected_--;
    c.errors++;
  }
  errors_all_[key]++;
  if (InWindow(now)) errors_window_[key]++;
  Unwatch(c);
  if (c.conn) PQfinish(c.conn);
  c.conn = nullptr;
  c.state = State::kWaitConnect;
  if (!g_stop) {
    reconnects_++;
    Schedule(c, now + 1.0);  // try again in a second
  }
}

void Driver::StartSampleConn() {
  if (o_.sample_conninfo.empty()) return;
  sconn_ = PQconnectdb(o_.sample_conninfo.c_str());
  if (PQstatus(sconn_) != CONNECTION_OK) {
    fprintf(stderr, "sampler: cannot connect: %s", PQerrorMessage(sconn_));
    PQfinish(sconn_);
    sconn_ = nullptr;
  }
}

void Driver::Sample() {
  double now = Now();
  long rss = o_.pooler_pid > 0 ? ProcStatusKb(o_.pooler_pid, "VmRSS") : -1;
  rss_max_kb_ = std::max(rss_max_kb_, rss);
  if (InWindow(now)) rss_window_max_kb_ = std::max(rss_window_max_kb_, rss);
  int total = -1, shared = -1;
  if (sconn_) {
    // a blocking query on a direct connection: a few hundred microseconds every 200 ms
    PGresult* r = PQexec(sconn_,
                         "SELECT count(*), count(*) FILTER (WHERE datname = 'shared'), "
                         "(SELECT sum(sessions) FROM pg_stat_database)::bigint FROM pg_stat_activity "
                         "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      total = atoi(PQgetvalue(r, 0, 0));
      shared = atoi(PQgetvalue(r, 0, 1));
      // backend sessions started so far (PostgreSQL's cumulative statistics): logins per second
      long long sessions = atoll(PQgetvalue(r, 0, 2));
      if (InWindow(now)) {
        if (sessions_w0_ < 0) sessions_w0_ = sessions, sessions_t0_ = now;
        sessions_w1_ = sessions, sessions_t1_ = now;
      }
    }
    PQclear(r);
  }
  smax_total_ = std::max(smax_total_, total);
  smax_shared_ = std::max(smax_shared_, shared);
  if (InWindow(now)) smax_window_ = std::max(smax_window_, total);
  char b[128];
  snprintf(b, sizeof b, "[%.1f,%d,%d,%ld,%d]", now - t_begin_, total, shared, rss, connected_);
  samples_.push_back(b);
}

int Driver::Run() {
  ep_ = epoll_create1(0);
  cl_.resize(o_.clients);
  // Zipf over ranks 1..tenants: P(k) ~ 1 / k^s
  std::vector<double> cdf(o_.tenants);
  double acc = 0;
  for (int k = 1; k <= o_.tenants; k++) acc += 1.0 / std::pow(k, o_.zipf_s), cdf[k - 1] = acc;
  for (auto& x : cdf) x /= acc;
  std::mt19937_64 assign(o_.seed);
  std::uniform_real_distribution<double> u01(0, 1);
  int nshared = static_cast<int>(std::lround(o_.clients * o_.shared_pct / 100.0));
  for (int i = 0; i < o_.clients; i++) {
    Client& c = cl_[i];
    c.idx = i;
    c.shared = i < nshared;
    double x = u01(assign);
    c.tenant = static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), x) - cdf.begin()) + 1;
    if (c.tenant > o_.tenants) c.tenant = o_.tenants;
    connect_order_.push_back(i);
  }
  std::shuffle(connect_order_.begin(), connect_order_.end(), assign);
  rng_.seed(o_.seed + 1);

  StartSampleConn();
  t_begin_ = Now();
  next_sample_ = t_begin_;
  Status("ramp_start");
  double last_progress = t_begin_;
  std::vector<epoll_event> evs(1024);
  double ramp_end = t_begin_ + o_.ramp_max;
  double end_at = 1e300, next_timeout_check = 0;
  bool ended = false;
  while (true) {
    double now = Now();
    // logins: keep up to connect_concurrency in flight
    while (next_connect_ < connect_order_.size() && connecting_ < o_.connect_concurrency) {
      StartConnect(cl_[connect_order_[next_connect_++]]);
    }
    // login timeout
    // (libpq's connect_timeout is not applied by PQconnectPoll; bound logins here)
    // the window
    if (!window_open_ && ((next_connect_ == connect_order_.size() && connecting_ == 0) || now >= ramp_end)) {
      all_connected_at_ = now - t_begin_;
      window_open_ = true;
      w0_ = now + o_.warm;
      w1_ = w0_ + o_.duration;
      end_at = w1_ + o_.tail;
      fprintf(stderr, "[driver] %d of %d clients connected after %.1f s (%d logins in flight); window %.0f s starts in %.0f s\n",
              connected_, o_.clients, now - t_begin_, connecting_, o_.duration, o_.warm);
      Status("ramp_end");
    }
    if (window_open_ && cpu0_.t == 0 && now >= w0_) {
      cpu0_ = TakeCpu(o_);
      Status("window_start");
    }
    if (window_open_ && cpu1_.t == 0 && now >= w1_) {
      cpu1_ = TakeCpu(o_);
      // transactions in flight at the end of the window, and the oldest
      for (auto& c : cl_) {
        if (c.state == State::kBusy) {
          inflight_at_end_++;
          oldest_inflight_at_end_ = std::max(oldest_inflight_at_end_, now - c.t_start);
        }
      }
      Status("window_end");
      fprintf(stderr, "[driver] window done\n");
    }
    if (now >= end_at || g_stop) {
      ended = true;
      break;
    }
    if (now >= next_sample_) {
      Sample();
      next_sample_ += 0.2;
      if (next_sample_ < now) next_sample_ = now + 0.2;
    }
    if (now - last_progress >= 5) {
      last_progress = now;
      uint64_t last = per_second_.size() >= 2 ? per_second_[per_second_.size() - 2] : 0;
      fprintf(stderr, "[driver] t=%.0f s connected %d logging-in %d, last second %llu txns\n", now - t_begin_, connected_,
              connecting_, static_cast<unsigned long long>(last));
    }
    while (!timers_.empty() && timers_.top().first <= now) {
      auto [at, i] = timers_.top();
      timers_.pop();
      Client& c = cl_[i];
      if (at != c.wake_at) continue;  // stale
      if (c.state == State::kThink && c.conn) SendTxn(c);
      else if (c.state == State::kWaitConnect && !g_stop) StartConnect(c);
    }
    // logins that take too long
    if (connecting_ > 0 && now >= next_timeout_check) {
      next_timeout_check = now + 0.5;
      for (size_t k = 0; k < next_connect_; k++) {
        Client& c = cl_[connect_order_[k]];
        if (c.state == State::kConnecting && now - c.t_start > o_.connect_timeout) {
          connecting_--;
          Fail(c, "connect: timeout", true);
        }
      }
    }
    double wait = std::min(next_sample_ - now, 0.05);
    if (!timers_.empty()) wait = std::min(wait, timers_.top().first - now);
    int ms = std::max(0, static_cast<int>(wait * 1000));
    int n = epoll_wait(ep_, evs.data(), evs.size(), ms);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      return 1;
    }
    for (int k = 0; k < n; k++) {
      Client& c = cl_[evs[k].data.u32];
      if (!c.conn) continue;
      if (c.state == State::kConnecting) OnConnectEvent(c);
      else if (c.state == State::kBusy) OnBusyEvent(c);
      else if (c.state == State::kThink) {
        // unsolicited input (a notice, a FATAL from the pooler): read it; a closed connection fails
        if (!PQconsumeInput(c.conn) || PQstatus(c.conn) == CONNECTION_BAD) {
          Fail(c, "lost while idle: " + std::string(PQerrorMessage(c.conn)), false);
        } else {
          while (!PQisBusy(c.conn)) {
            PGresult* r = PQgetResult(c.conn);
            if (!r) break;
            PQclear(r);
          }
        }
      }
    }
  }
  (void)ended;
  double t_close = Now();
  for (auto& c : cl_) {
    if (c.conn) PQfinish(c.conn);
    c.conn = nullptr;
  }
  fprintf(stderr, "[driver] closed every connection in %.1f s\n", Now() - t_close);
  if (sconn_) PQfinish(sconn_);
  WriteOut(t_begin_);
  return 0;
}

void Driver::WriteOut(double t0) {
  FILE* f = o_.out.empty() ? stdout : fopen(o_.out.c_str(), "w");
  if (!f) {
    perror("open --out");
    return;
  }
  Histogram all = h_shared_;
  all.Merge(h_ded_);
  double span = w1_ - w0_;
  if (cpu1_.t == 0) span = 0;
  auto ms = [](double us) { return us < 0 ? -1.0 : us / 1000.0; };
  // clients and tenants never served in the window
  int conn_clients[2] = {0, 0}, never[2] = {0, 0}, assigned[2] = {0, 0}, never_connected[2] = {0, 0};
  std::map<int, std::pair<int, uint64_t>> ten[2];  // tenant -> (clients, window txns)
  for (auto& c : cl_) {
    int s = c.shared ? 1 : 0;
    assigned[s]++;
    if (!c.ever_connected) never_connected[s]++;
    else conn_clients[s]++;
    if (c.txns_window == 0) never[s]++;
    auto& t = ten[s][c.tenant];
    t.first++;
    t.second += c.txns_window;
  }
  int active[2] = {0, 0}, tnever[2] = {0, 0};
  for (int s = 0; s < 2; s++)
    for (auto& [k, v] : ten[s]) {
      active[s]++;
      if (v.second == 0) tnever[s]++;
    }
  uint64_t errs_window = 0;
  for (auto& [k, v] : errors_window_) errs_window += v;
  fprintf(f, "{\n \"target\": %s, \"clients\": %d, \"shared_clients\": %d, \"dedicated_clients\": %d,\n", JsonStr(o_.target).c_str(),
          o_.clients, assigned[1], assigned[0]);
  fprintf(f, " \"tenants_per_side\": %d, \"zipf_s\": %g, \"think_ms\": %g, \"seed\": %llu,\n", o_.tenants, o_.zipf_s, o_.think_ms,
          static_cast<unsigned long long>(o_.seed));
  fprintf(f, " \"ramp_s\": %.2f, \"window_s\": %.2f, \"clients_connected_at_window\": %d,\n", all_connected_at_, span, connected_);
  fprintf(f, " \"txns\": %llu, \"tps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f,\n",
          static_cast<unsigned long long>(all.count()), span > 0 ? all.count() / span : 0.0, ms(all.Quantile(0.5)),
          ms(all.Quantile(0.99)), ms(all.Quantile(0.999)), ms(static_cast<double>(all.max())));
  for (int s = 0; s < 2; s++) {
    const Histogram& h = s ? h_shared_ : h_ded_;
    fprintf(f, " \"%s\": {\"txns\": %llu, \"tps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
               "\"clients\": %d, \"clients_never_connected\": %d, \"clients_never_served\": %d, \"tenants_active\": %d, "
               "\"tenants_never_served\": %d},\n",
            s ? "shared" : "dedicated", static_cast<unsigned long long>(h.count()), span > 0 ? h.count() / span : 0.0,
            ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(static_cast<double>(h.max())), assigned[s],
            never_connected[s], never[s], active[s], tnever[s]);
  }
  fprintf(f, " \"clients_never_served\": %d, \"tenants_active\": %d, \"tenants_never_served\": %d,\n", never[0] + never[1],
          active[0] + active[1], tnever[0] + tnever[1]);
  fprintf(f, " \"inflight_at_window_end\": %d, \"oldest_inflight_at_window_end_s\": %.2f,\n", inflight_at_end_,
          oldest_inflight_at_end_);
  auto dump = [&](const char* name, const std::map<std::string, uint64_t>& m) {
    fprintf(f, " \"%s\": {", name);
    bool first = true;
    for (auto& [k, v] : m) {
      fprintf(f, "%s%s: %llu", first ? "" : ", ", JsonStr(k).c_str(), static_cast<unsigned long long>(v));
      first = false;
    }
    fprintf(f, "},\n");
  };
  fprintf(f, " \"errors_window\": %llu, \"disconnects\": %llu, \"reconnect_attempts\": %llu,\n",
          static_cast<unsigned long long>(errs_window), static_cast<unsigned long long>(disconnects_),
          static_cast<unsigned long long>(reconnects_));
  dump("errors_window_by_kind", errors_window_);
  dump("errors_all_by_kind", errors_all_);
  dump("connect_errors_by_kind", connect_errors_);
  fprintf(f, " \"server_conns_max\": %d, \"server_conns_max_window\": %d, \"server_conns_shared_max\": %d,\n", smax_total_,
          smax_window_, smax_shared_);
  fprintf(f, " \"backend_sessions_per_s_window\": %.1f,\n",
          sessions_w0_ >= 0 && sessions_t1_ > sessions_t0_ ? (sessions_w1_ - sessions_w0_) / (sessions_t1_ - sessions_t0_) : -1.0);
  long hwm = o_.pooler_pid > 0 ? ProcStatusKb(o_.pooler_pid, "VmHWM") : -1;
  fprintf(f, " \"pooler_rss_max_kb\": %ld, \"pooler_rss_window_max_kb\": %ld, \"pooler_vmhwm_kb\": %ld,\n", rss_max_kb_,
          rss_window_max_kb_, hwm);
  if (cpu0_.t > 0 && cpu1_.t > 0) {
    double dt = cpu1_.t - cpu0_.t, tck = sysconf(_SC_CLK_TCK);
    auto core = [&](long long a, long long b) { return (a < 0 || b < 0) ? -1.0 : 100.0 * (b - a) / tck / dt; };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double machine = cpu1_.total > cpu0_.total ? 100.0 * (cpu1_.busy - cpu0_.busy) / (cpu1_.total - cpu0_.total) * ncpu : -1;
    fprintf(f, " \"cpu_core_pct\": {\"machine\": %.1f, \"pooler\": %.1f, \"postgres\": %.1f, \"driver\": %.1f},\n", machine,
            core(cpu0_.pooler, cpu1_.pooler), core(cpu0_.pg, cpu1_.pg), core(cpu0_.self, cpu1_.self));
  }
  fprintf(f, " \"per_second\": [");
  for (size_t i = 0; i < per_second_.size(); i++) fprintf(f, "%s%llu", i ? "," : "", static_cast<unsigned long long>(per_second_[i]));
  fprintf(f, "],\n \"window_start_offset_s\": %.2f,\n", cpu0_.t > 0 ? w0_ - t0 : -1.0);
  fprintf(f, " \"samples\": [");  // [t, server conns, of them on 'shared', pooler RSS kB, clients connected]
  for (size_t i = 0; i < samples_.size(); i++) fprintf(f, "%s%s", i ? "," : "", samples_[i].c_str());
  fprintf(f, "]\n}\n");
  if (f != stdout) fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, [](int) { g_stop = 1; });
  signal(SIGINT, [](int) { g_stop = 1; });
  Driver d(o);
  return d.Run();
}
