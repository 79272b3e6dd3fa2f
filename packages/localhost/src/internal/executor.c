/*
 * tezt-cloud's native local executor: the frame protocol of the ssh executor (packages/ssh/src/internal/executor.pl,
 * whose header describes every frame), for process sandboxes on this machine. It starts commands with
 * posix_spawn (glibc's runs the child on the executor's memory until it execs), where a fork of Perl copies the
 * interpreter's page tables and takes a copy-on-write fault for each page either side then writes: measured here,
 * a `true` costs ~0.09 ms of this process's CPU and ~0.7 ms of the child's, against ~0.45 ms and ~1.2 ms from Perl.
 *
 * Built by scripts/bootstrap.sh when a C compiler is there (LocalExecutor.ts falls back to the Perl one otherwise).
 * Same behaviour as the Perl executor: every process of a request carries TEZT_CLOUD_XREQ=<session>-<id>; `c`
 * commands run in a session of their own; when the input closes or a SIGTERM, SIGHUP or SIGINT comes, the trees of
 * the running requests are killed and the executor exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* `size` bytes, or the executor exits (70, as sysexits' EX_SOFTWARE): it cannot go on without memory. */
static void *alloc(void *p, size_t size) {
  p = realloc(p, size);
  if (p == NULL) _exit(70);
  return p;
}

/* Makes room for one more of an array's `count` items (of `size` bytes) whose capacity is `*cap`. */
static void *room(void *items, size_t count, size_t *cap, size_t size) {
  if (count < *cap) return items;
  *cap = *cap ? *cap * 2 : 16;
  return alloc(items, *cap * size);
}

/* A string formatted as by printf, allocated. */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...) {
  va_list args;
  char *out;
  va_start(args, fmt);
  int n = vasprintf(&out, fmt, args);
  va_end(args);
  if (n < 0) _exit(70);
  return out;
}

/* The signals this executor handles or ignores: a command gets them at their defaults, with none blocked. */
static const int child_defaults[] = {SIGPIPE, SIGTERM, SIGHUP, SIGINT, SIGCHLD};

/* A growable byte buffer. */
typedef struct {
  char *data;
  size_t len, cap;
} Buf;

static void buf_add(Buf *b, const char *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    b->data = alloc(b->data, cap);
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}

static void buf_drop(Buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

typedef struct {
  uint32_t id;
  pid_t pid;
  int out, err, in; /* -1 once closed */
  Buf inbuf;
  int ineof, paused, group;
  int status; /* -1 while running */
} Req;

static Req *reqs;
static size_t nreqs, capreqs;
static pid_t *killers;
static size_t nkillers, capkillers;
static const char *session = "x";
static volatile sig_atomic_t stop;
static int wake_r = -1, wake_w = -1;

static void quit(void);

static void out_frame(char type, uint32_t id, const char *data, size_t len) {
  char head[9];
  uint32_t n;
  head[0] = type;
  n = htonl(id);
  memcpy(head + 1, &n, 4);
  n = htonl((uint32_t)len);
  memcpy(head + 5, &n, 4);
  for (int part = 0; part < 2; part++) {
    const char *p = part == 0 ? head : data;
    size_t left = part == 0 ? 9 : len;
    while (left > 0) {
      ssize_t w = write(1, p, left);
      if (w < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        quit();
      }
      p += w;
      left -= (size_t)w;
    }
  }
}

static void out_text(char type, uint32_t id, const char *text) { out_frame(type, id, text, strlen(text)); }

static void out_number(char type, uint32_t id, long number) {
  char b[32];
  out_frame(type, id, b, (size_t)snprintf(b, sizeof b, "%ld", number));
}

/* Does this environment block (NUL-separated) hold one of `markers` ("TEZT_CLOUD_XREQ=<marker>") exactly? */
static int has_marker(const char *env, size_t len, char **markers, size_t n) {
  for (size_t pos = 0; pos < len;) {
    const char *v = env + pos;
    size_t l = strnlen(v, len - pos);
    for (size_t i = 0; i < n; i++) {
      if (l == 16 + strlen(markers[i]) && memcmp(v, "TEZT_CLOUD_XREQ=", 16) == 0 && memcmp(v + 16, markers[i], l - 16) == 0)
        return 1;
    }
    pos += l + 1;
  }
  return 0;
}

/* The pids of the processes (not this one) carrying one of `markers`; their number in *count. */
static pid_t *marked(char **markers, size_t n, size_t *count) {
  pid_t *pids = NULL;
  size_t cap = 0;
  *count = 0;
  DIR *dir = opendir("/proc");
  if (dir == NULL) return NULL;
  struct dirent *e;
  Buf env = {0};
  while ((e = readdir(dir)) != NULL) {
    char *end;
    long p = strtol(e->d_name, &end, 10);
    if (*end != 0 || p <= 0 || p == getpid()) continue;
    char file[64];
    snprintf(file, sizeof file, "/proc/%ld/environ", p);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    env.len = 0;
    char chunk[8192];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0) buf_add(&env, chunk, (size_t)got);
    close(fd);
    if (env.len == 0 || !has_marker(env.data, env.len, markers, n)) continue;
    pids = room(pids, *count, &cap, sizeof *pids);
    pids[(*count)++] = (pid_t)p;
  }
  closedir(dir);
  free(env.data);
  return pids;
}

static void signal_all(pid_t *pids, size_t n, int sig) {
  for (size_t i = 0; i < n; i++) {
    kill(-pids[i], sig);
    kill(pids[i], sig);
  }
}

/* SIGTERM to every marked process and its group, SIGKILL to what is left after the grace period. */
static void kill_marked(double grace, char **markers, size_t n) {
  size_t count;
  pid_t *pids = marked(markers, n, &count);
  if (count == 0) return free(pids);
  signal_all(pids, count, SIGTERM);
  for (int i = 0; i < (int)(grace * 10); i++) {
    struct timespec tenth = {0, 100000000};
    nanosleep(&tenth, NULL);
    free(pids);
    pids = marked(markers, n, &count);
    if (count == 0) return free(pids);
  }
  signal_all(pids, count, SIGKILL);
  free(pids);
}

static char *marker_of(uint32_t id) {
  return format("%s-%u", session, id);
}

static void quit(void) {
  char **markers = alloc(NULL, (nreqs + 1) * sizeof *markers);
  size_t n = 0;
  for (size_t i = 0; i < nreqs; i++)
    if (reqs[i].status < 0) markers[n++] = marker_of(reqs[i].id);
  if (n > 0) kill_marked(2, markers, n);
  _exit(0);
}

static Req *find(uint32_t id) {
  for (size_t i = 0; i < nreqs; i++)
    if (reqs[i].id == id) return &reqs[i];
  return NULL;
}

static void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  if (write(wake_w, "c", 1) < 0) {}
  errno = saved;
}

static void on_stop(int sig) {
  stop = 1;
  on_child(sig);
}

/* `environ` with `NAME=VALUE` entries set (replacing the same names); the array only is allocated. */
static char **environment(char **set, size_t nset) {
  size_t n = 0;
  while (environ[n] != NULL) n++;
  char **env = alloc(NULL, (n + nset + 1) * sizeof *env);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    int replaced = 0;
    for (size_t j = 0; j < nset && !replaced; j++) {
      size_t name = strcspn(set[j], "=");
      replaced = strncmp(environ[i], set[j], name + 1) == 0;
    }
    if (!replaced) env[k++] = environ[i];
  }
  for (size_t j = 0; j < nset; j++) {
    size_t name = strcspn(set[j], "=");
    int later = 0;
    for (size_t l = j + 1; l < nset && !later; l++) later = strncmp(set[l], set[j], name + 1) == 0;
    if (!later) env[k++] = set[j];
  }
  env[k] = NULL;
  return env;
}

/* The value of `name` in `env`, or NULL. */
static const char *lookup(char **env, const char *name) {
  size_t l = strlen(name);
  for (size_t i = 0; env[i] != NULL; i++)
    if (strncmp(env[i], name, l) == 0 && env[i][l] == '=') return env[i] + l + 1;
  return NULL;
}

/* `program` found on `path` as execvp would (the first regular executable file), absolute or relative to `cwd`. */
static char *resolve(const char *program, const char *path, const char *cwd) {
  if (strchr(program, '/') != NULL) return strdup(program);
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path;; p++) {
    const char *colon = strchrnul(p, ':');
    size_t dl = (size_t)(colon - p);
    /* A relative entry (an empty one is the current directory) is relative to the command's directory. */
    char *candidate = p[0] == '/' ? format("%.*s/%s", (int)dl, p, program)
                                  : format("%s/%.*s%s%s", cwd, (int)dl, p, dl == 0 ? "" : "/", program);
    struct stat st;
    if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0) return candidate;
    free(candidate);
    if (*colon == 0) return NULL;
    p = colon;
  }
}

/*
 * The slow way, exactly as the Perl executor does it, for what posix_spawn cannot do as execvp would: a program not
 * found or not executable (its message on stderr, 127 or 126), a directory that cannot be entered (2), a script
 * without `#!`.
 */
static pid_t forked(int in, int out, int err, int setsid_, const char *cwd, char **env, char **argv) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  for (size_t i = 0; i < sizeof child_defaults / sizeof *child_defaults; i++) signal(child_defaults[i], SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (in >= 0) dup2(in, 0);
  else {
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
  }
  dup2(out, 1);
  dup2(err, 2);
  if (setsid_) setsid();
  if (cwd != NULL && chdir(cwd) != 0) {
    dprintf(2, "cd: %s: %s\n", cwd, strerror(errno));
    _exit(2);
  }
  environ = env;
  execvp(argv[0], argv);
  int e = errno;
  dprintf(2, "%s: %s\n", argv[0], strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

/* Starts request `id`: a shell line (`line`), or the fields of a `c` frame (`fields`, `nfields` of them). */
static void start(uint32_t id, int flags, const char *line, char **fields, size_t nfields) {
  int o[2] = {-1, -1}, e[2] = {-1, -1}, i[2] = {-1, -1};
  if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0 || ((flags & 1) && pipe2(i, O_CLOEXEC) != 0)) {
    char msg[128];
    snprintf(msg, sizeof msg, "pipe: %s", strerror(errno));
    for (int k = 0; k < 2; k++) {
      if (o[k] >= 0) close(o[k]);
      if (e[k] >= 0) close(e[k]);
      if (i[k] >= 0) close(i[k]);
    }
    return out_text('F', id, msg);
  }
  char *marker = marker_of(id);
  char *xreq = format("TEZT_CLOUD_XREQ=%s", marker);
  free(marker);
  char *path_set = NULL;
  char **set = alloc(NULL, (nfields + 2) * sizeof *set);
  size_t nset = 0;
  const char *cwd = NULL;
  char **argv;
  char *sh_argv[] = {"/bin/sh", "-c", (char *)line, NULL};
  set[nset++] = xreq;
  if (fields == NULL) argv = sh_argv;
  else {
    size_t count = strtoul(fields[2], NULL, 10);
    cwd = fields[0];
    if (fields[1][0] != 0) {
      const char *old = lookup(environ, "PATH");
      path_set = format("PATH=%s:%s", fields[1], old ? old : "/usr/local/bin:/usr/bin:/bin");
      set[nset++] = path_set;
    }
    for (size_t k = 0; k < count; k++) set[nset++] = fields[3 + k];
    argv = fields + 3 + count;
  }
  char **env = environment(set, nset);
  pid_t pid = -1;
  char *program = fields == NULL ? strdup("/bin/sh") : resolve(argv[0], lookup(env, "PATH"), cwd);
  if (program != NULL) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    if (i[0] >= 0) posix_spawn_file_actions_adddup2(&actions, i[0], 0);
    else posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, o[1], 1);
    posix_spawn_file_actions_adddup2(&actions, e[1], 2);
    if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&actions, cwd);
    sigset_t defaults, none;
    sigemptyset(&defaults);
    for (size_t k = 0; k < sizeof child_defaults / sizeof *child_defaults; k++) sigaddset(&defaults, child_defaults[k]);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                        (fields != NULL ? POSIX_SPAWN_SETSID : 0));
    if (posix_spawn(&pid, program, &actions, &attr, argv, env) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    free(program);
  }
  if (pid < 0) pid = forked(i[0], o[1], e[1], fields != NULL, cwd, env, argv);
  free(env);
  free(xreq);
  free(path_set);
  free(set);
  close(o[1]);
  close(e[1]);
  if (i[0] >= 0) close(i[0]);
  if (pid < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "fork: %s", strerror(errno));
    close(o[0]);
    close(e[0]);
    if (i[1] >= 0) close(i[1]);
    return out_text('F', id, msg);
  }
  if (i[1] >= 0) nonblocking(i[1]);
  out_number('S', id, pid);
  reqs = room(reqs, nreqs, &capreqs, sizeof *reqs);
  reqs[nreqs++] = (Req){.id = id, .pid = pid, .out = o[0], .err = e[0], .in = i[1], .group = fields != NULL && (flags & 2), .status = -1};
}

static void close_stdin(Req *r) {
  if (r->in >= 0) close(r->in);
  r->in = -1;
  r->inbuf.len = 0;
}

/* Closes every descriptor above stderr (in a killer, which must hold no request's pipe open). */
static void close_others(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == NULL) return;
  int keep = dirfd(dir), fds[4096];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL && n < sizeof fds / sizeof *fds) {
    int fd = atoi(e->d_name);
    if (fd > 2 && fd != keep) fds[n++] = fd;
  }
  closedir(dir);
  for (size_t k = 0; k < n; k++) close(fds[k]);
}

static void handle(char type, uint32_t id, char *data, size_t len) {
  Req *r = find(id);
  if (type == 'x' || type == 'c') {
    if (r != NULL) return out_text('F', id, "duplicate request id");
    if (len == 0) return out_text('F', id, "malformed command frame");
    int flags = (unsigned char)data[0];
    if (type == 'x') return start(id, flags, data + 1, NULL, 0);
    /* cwd, PATH prefix, count, that many NAME=VALUE, then a non-empty argv; a trailing empty field counts. */
    size_t cap = 16, n = 0;
    char **fields = alloc(NULL, (cap + 1) * sizeof *fields);
    for (size_t pos = 1;; ) {
      if (n == cap) fields = alloc(fields, ((cap *= 2) + 1) * sizeof *fields);
      fields[n++] = data + pos;
      size_t l = strnlen(data + pos, len - pos);
      pos += l + 1;
      if (pos > len) break;
    }
    fields[n] = NULL;
    int ok = n >= 4 && fields[2][0] != 0 && strspn(fields[2], "0123456789") == strlen(fields[2]) &&
             n > 3 + strtoul(fields[2], NULL, 10);
    if (ok) start(id, flags, NULL, fields, n);
    else out_text('F', id, "malformed command frame");
    free(fields);
  } else if (type == 'i') {
    if (r != NULL && r->in >= 0) buf_add(&r->inbuf, data, len);
    else out_frame('A', id, NULL, 0);
  } else if (type == 'e') {
    if (r == NULL) return;
    r->ineof = 1;
    if (r->in >= 0 && r->inbuf.len == 0) close_stdin(r);
  } else if (type == 'k') {
    if (r == NULL || r->status >= 0) return;
    double grace = atof(data);
    pid_t killer = fork();
    if (killer == 0) {
      close_others();
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      char *marker = marker_of(id);
      kill_marked(grace, &marker, 1);
      _exit(0);
    }
    if (killer > 0) {
      killers = room(killers, nkillers, &capkillers, sizeof *killers);
      killers[nkillers++] = killer;
    }
  } else if (type == 'p') {
    if (r != NULL) r->paused = 1;
  } else if (type == 'r') {
    if (r != NULL) r->paused = 0;
  }
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    int killer = 0;
    for (size_t k = 0; k < nkillers && !killer; k++)
      if (killers[k] == pid) {
        killers[k] = killers[--nkillers];
        killer = 1;
      }
    if (killer) continue;
    for (size_t k = 0; k < nreqs; k++)
      if (reqs[k].pid == pid && reqs[k].status < 0) {
        reqs[k].status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        break;
      }
  }
}

int main(int argc, char **argv) {
  if (argc > 1) session = argv[1];
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  wake_r = wake[0];
  wake_w = wake[1];
  struct sigaction sa = {0};
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  out_number('R', 0, getpid());
  Buf input = {0};
  struct pollfd *fds = NULL;
  size_t capfds = 0;
  for (;;) {
    if (stop) quit();
    if (capfds < 2 + 3 * nreqs) {
      capfds = 2 + 3 * nreqs + 64;
      fds = alloc(fds, capfds * sizeof *fds);
    }
    size_t nf = 0;
    fds[nf++] = (struct pollfd){.fd = 0, .events = POLLIN};
    fds[nf++] = (struct pollfd){.fd = wake_r, .events = POLLIN};
    /* Each request's three slots: its stdout, stderr (unless paused) and stdin (while it has bytes to take). */
    for (size_t k = 0; k < nreqs; k++) {
      Req *r = &reqs[k];
      fds[nf++] = (struct pollfd){.fd = r->paused ? -1 : r->out, .events = POLLIN};
      fds[nf++] = (struct pollfd){.fd = r->paused ? -1 : r->err, .events = POLLIN};
      fds[nf++] = (struct pollfd){.fd = r->inbuf.len > 0 ? r->in : -1, .events = POLLOUT};
    }
    size_t polled = nreqs;
    int n = poll(fds, nf, 1000);
    if (n > 0 && fds[1].revents) {
      char drain[4096];
      while (read(wake_r, drain, sizeof drain) > 0) {}
    }
    reap();
    if (n > 0) {
      if (fds[0].revents) {
        char chunk[65536];
        ssize_t got = read(0, chunk, sizeof chunk);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) quit();
        if (got > 0) buf_add(&input, chunk, (size_t)got);
        size_t pos = 0;
        while (input.len - pos >= 9) {
          uint32_t id, len;
          memcpy(&id, input.data + pos + 1, 4);
          memcpy(&len, input.data + pos + 5, 4);
          id = ntohl(id);
          len = ntohl(len);
          if (input.len - pos - 9 < len) break;
          /* The payload, NUL-terminated in a copy (the next frame starts right after it). */
          char *payload = alloc(NULL, (size_t)len + 1);
          memcpy(payload, input.data + pos + 9, len);
          payload[len] = 0;
          handle(input.data[pos], id, payload, len);
          free(payload);
          pos += 9 + (size_t)len;
        }
        buf_drop(&input, pos);
      }
      /* Requests started while handling the input have no slots in this poll: they wait for the next one. */
      for (size_t k = 0; k < polled && k < nreqs; k++) {
        Req *r = &reqs[k];
        struct pollfd *slot = &fds[2 + 3 * k];
        for (int s = 0; s < 2; s++) {
          int *fd = s == 0 ? &r->out : &r->err;
          if (*fd < 0 || slot[s].fd != *fd || !slot[s].revents) continue;
          char chunk[65536];
          ssize_t got = read(*fd, chunk, sizeof chunk);
          if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
          if (got > 0) out_frame(s == 0 ? 'O' : 'E', r->id, chunk, (size_t)got);
          else {
            close(*fd);
            *fd = -1;
          }
        }
        if (r->in >= 0 && r->inbuf.len > 0 && slot[2].fd == r->in && slot[2].revents) {
          ssize_t put = write(r->in, r->inbuf.data, r->inbuf.len);
          if (put >= 0) buf_drop(&r->inbuf, (size_t)put);
          else if (errno != EINTR && errno != EAGAIN) close_stdin(r); /* it closed its stdin: the rest is dropped */
          if (r->inbuf.len == 0) {
            out_frame('A', r->id, NULL, 0);
            if (r->ineof) close_stdin(r);
          }
        }
      }
    }
    for (size_t k = 0; k < nreqs;) {
      Req *r = &reqs[k];
      if (r->out >= 0 || r->err >= 0 || r->status < 0) {
        k++;
        continue;
      }
      close_stdin(r);
      free(r->inbuf.data);
      if (r->group) kill(-r->pid, SIGKILL);
      out_number('X', r->id, r->status);
      reqs[k] = reqs[--nreqs];
    }
  }
}
