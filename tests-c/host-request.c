/*
 * The host's request across processes: one request per host whatever the number of
 * processes that load the library, a request whose process died settled by the next
 * process's first call, an alarm someone else set left alone, and fork() after a request
 * and while one is pending.
 *
 * Each case runs in a process of its own on a fake root (harness.h); the processes a case
 * starts are forked from it, and wait for each other on pipes, never for a fixed time.
 * Every child has an alarm() as a guard against a hang.
 */
#define _XOPEN_SOURCE 700

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <virnodesuspend.h>

/* libvirt's virErrorNumber and virErrorDomain values the library reports. */
enum {
    VIR_ERR_SYSTEM_ERROR = 38,
    VIR_ERR_OPERATION_INVALID = 55,
    VIR_FROM_NONE = 0,
};

#define IN_PROGRESS "Requested operation is not valid: Suspend operation already in progress"
#define NO_REQUEST "Requested operation is not valid: no suspend request was made"
#define MEM_BIT (1u << VIR_NODE_SUSPEND_TARGET_MEM)
#define STATE "sys/power/state"
#define WAKEALARM "sys/class/rtc/rtc0/wakealarm"
#define RECORD "run/virnodesuspend/request"

/* How long a child may take before its alarm ends it, and a case waits on a pipe. */
#define HANG_GUARD_SECS 60

/* --- Processes ------------------------------------------------------------------------ */

/* The children of the running case, killed and reaped if the case fails before it has
 * reaped them (so that none is left running on the root the runner removes). */
static pid_t children[8];
static pid_t case_process;

static void kill_children(void)
{
    if (getpid() != case_process)
        return; /* a child ending: its siblings are not its own */
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
}

/* Forks a child that runs `body` with a hang guard, and exits 0 when it returns (a failed
 * CHECK in it exits 1 after printing why). */
static pid_t start_child(void (*body)(void *), void *arg)
{
    size_t slot = 0;
    if (case_process != getpid()) {
        case_process = getpid();
        CHECK(atexit(kill_children) == 0);
    }
    while (slot < sizeof(children) / sizeof(children[0]) && children[slot] > 0)
        slot++;
    CHECK(slot < sizeof(children) / sizeof(children[0]));
    fflush(stdout); /* or the child would print the case's buffered output again */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(HANG_GUARD_SECS);
        body(arg);
        exit(0);
    }
    children[slot] = pid;
    return pid;
}

static void forget_child(pid_t pid)
{
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
        if (children[i] == pid)
            children[i] = 0;
}

/* Reaps a child; the case fails unless it exited 0. */
static void reap_ok(pid_t pid, const char *who)
{
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    forget_child(pid);
    if (WIFSIGNALED(status))
        printf("# %s (pid %d) was killed by signal %d%s\n", who, (int)pid, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (its hang guard)" : "");
    else if (WEXITSTATUS(status) != 0)
        printf("# %s (pid %d) failed\n", who, (int)pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* --- Pipes ---------------------------------------------------------------------------- */

static void make_pipe(int fds[2])
{
    CHECK(pipe(fds) == 0);
}

static void write_all(int fd, const void *data, size_t size)
{
    const char *bytes = data;
    while (size > 0) {
        ssize_t n = write(fd, bytes, size);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n > 0);
        bytes += n;
        size -= (size_t)n;
    }
}

/* Reads up to `size` bytes, until end of file; waits at most HANG_GUARD_SECS for each.
 * Returns the number read. */
static size_t read_within(int fd, void *data, size_t size)
{
    char *bytes = data;
    size_t got = 0;
    while (got < size) {
        struct pollfd ready = {fd, POLLIN, 0};
        int polled = poll(&ready, 1, HANG_GUARD_SECS * 1000);
        if (polled < 0 && errno == EINTR)
            continue;
        CHECK(polled == 1); /* 0: nothing came within the hang guard's time */
        ssize_t n = read(fd, bytes + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void signal_once(int fd)
{
    write_all(fd, "!", 1);
}

/* Waits for `signal_once` on the other end; false at end of file (its writer is gone). */
static bool await_signal(int fd)
{
    char byte;
    return read_within(fd, &byte, 1) == 1;
}

/* --- The host's files ----------------------------------------------------------------- */

/* Whether the host's request record holds the line `key=value` (formatted as printf). */
__attribute__((format(printf, 1, 2))) static bool record_has(const char *format, ...)
{
    char line[512], record[4096 + 2];
    va_list args;
    va_start(args, format);
    vsnprintf(line + 1, sizeof(line) - 2, format, args);
    va_end(args);
    line[0] = '\n';
    strcat(line, "\n");
    snprintf(record, sizeof(record), "\n%s", root_read(RECORD));
    return strstr(record, line) != NULL;
}

/* The record on one line, for a TAP comment (in a static buffer). */
static const char *record_in_one_line(void)
{
    static char text[4096];
    snprintf(text, sizeof(text), "%s", root_read(RECORD));
    for (char *c = text; *c; c++)
        if (*c == '\n')
            *c = c[1] ? ' ' : '\0';
    return text;
}

static void replace_state_file_with_a_fifo(void)
{
    root_remove(STATE);
    CHECK(mkfifo(root_path(STATE), 0600) == 0);
}

static void replace_state_file_with_dev_full(void)
{
    root_remove(STATE);
    CHECK(symlink("/dev/full", root_path(STATE)) == 0);
}

static bool read_text(const char *path, char *text, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, text, size - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return n > 0;
}

/*
 * Whether the library's worker thread in this process is asleep in futex(2), waiting for
 * a request or for its delay to pass, with the library's lock released. A fork while the
 * worker holds that lock (for a few instructions after it starts, or after a request
 * ended) would leave the child's copy of the lock held for good: POSIX allows a child of
 * a multithreaded process only async-signal-safe calls until exec. Once no other thread
 * is inside the library, the lock is not contended, so the worker's futex wait is its
 * condition variable's. (The worker is the thread named "node-suspend".)
 */
static bool worker_is_parked(void)
{
    DIR *tasks = opendir("/proc/self/task");
    bool parked = false;
    const struct dirent *task;
    CHECK(tasks != NULL);
    while ((task = readdir(tasks)) != NULL) {
        char path[300], text[256];
        if (task->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", task->d_name);
        if (!read_text(path, text, sizeof(text)) || strcmp(text, "node-suspend\n") != 0)
            continue;
        /* "running", or the number of the system call it is blocked in and its arguments. */
        snprintf(path, sizeof(path), "/proc/self/task/%s/syscall", task->d_name);
        parked = read_text(path, text, sizeof(text)) && strtol(text, NULL, 10) == SYS_futex;
    }
    closedir(tasks);
    return parked;
}

/* --- 1. Processes racing ---------------------------------------------------------------- */

#define PROCESSES 4
#define THREADS 8

/* One thread's answer, sent to the case through a pipe in one write (atomic: it is
 * smaller than PIPE_BUF). */
struct answer {
    int ret;
    int code;
    char message[120];
};

struct race {
    int ready[2];   /* each process: its capability query is done */
    int release[2]; /* closed by the case: all processes go */
    int answers[2]; /* each thread's answer */
    pthread_barrier_t start;
};

static void *race_in_a_thread(void *arg)
{
    struct race *race = arg;
    struct answer answer;
    memset(&answer, 0, sizeof(answer));
    pthread_barrier_wait(&race->start);
    answer.ret = virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0);
    answer.code = virNodeSuspendGetLastErrorCode();
    snprintf(answer.message, sizeof(answer.message), "%s", virNodeSuspendGetLastErrorMessage());
    write_all(race->answers[1], &answer, sizeof(answer));
    return (void *)(answer.ret == 0 ? race : NULL);
}

static void race_in_a_process(void *arg)
{
    struct race *race = arg;
    pthread_t threads[THREADS];
    int accepted = 0;
    CHECK(close(race->release[1]) == 0 && close(race->ready[0]) == 0 && close(race->answers[0]) == 0);
    /* The kernel backend's capability query reads sys/power/state: before it is a FIFO. */
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == MEM_BIT);
    CHECK(pthread_barrier_init(&race->start, NULL, THREADS + 1) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, race_in_a_thread, race) == 0);
    signal_once(race->ready[1]);
    CHECK(close(race->ready[1]) == 0);
    char byte;
    CHECK(read_within(race->release[0], &byte, 1) == 0); /* the case closed it: go */
    pthread_barrier_wait(&race->start);
    for (int i = 0; i < THREADS; i++) {
        void *won;
        CHECK(pthread_join(threads[i], &won) == 0);
        accepted += won != NULL;
    }
    pthread_barrier_destroy(&race->start);
    if (accepted == 0) {
        /* This process made no request: another process's is none of its own. */
        CHECK(virNodeSuspendWait() == -1);
        CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, NO_REQUEST);
        return;
    }
    CHECK(accepted == 1);
    /* Returns once the case has read what the worker writes to the FIFO. */
    CHECK(virNodeSuspendWait() == 0);
}

static void processes_and_threads_racing_on_one_host_get_one_request(void)
{
    root_host("freeze mem", "[platform] shutdown reboot", false);
    use_fake_root("0");
    struct race race;
    pid_t pids[PROCESSES];
    struct answer answers[PROCESSES * THREADS];
    make_pipe(race.ready);
    make_pipe(race.release);
    make_pipe(race.answers);
    for (int i = 0; i < PROCESSES; i++)
        pids[i] = start_child(race_in_a_process, &race);
    CHECK(close(race.ready[1]) == 0 && close(race.answers[1]) == 0 && close(race.release[0]) == 0);
    char ready[PROCESSES];
    CHECK(read_within(race.ready[0], ready, sizeof(ready)) == PROCESSES);

    /* The winner's write to sys/power/state blocks until the case reads the FIFO. */
    replace_state_file_with_a_fifo();
    CHECK(close(race.release[1]) == 0);
    CHECK(read_within(race.answers[0], answers, sizeof(answers)) == sizeof(answers));
    int accepted = 0, refused = 0;
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        if (answers[i].ret == 0 && answers[i].code == 0)
            accepted++;
        else if (answers[i].ret == -1 && answers[i].code == VIR_ERR_OPERATION_INVALID &&
                 strcmp(answers[i].message, IN_PROGRESS) == 0)
            refused++;
        else
            printf("# unexpected answer: %d, code %d: %s\n", answers[i].ret, answers[i].code, answers[i].message);
    }
    printf("# accepted %d, refused %d\n", accepted, refused);
    CHECK(accepted == 1);
    CHECK(refused == PROCESSES * THREADS - 1);
    /* Armed once, for the RTC's reading + 60 + 1. */
    CHECK_STR(root_read(WAKEALARM), "1800000061");
    CHECK(record_has("target=mem"));

    /* What the winner writes: no one else may write, then or later (the FIFO stays open
     * for reading until every process is gone, so that a later write would be kept). */
    int fifo = open(root_path(STATE), O_RDONLY | O_NONBLOCK);
    char written[64];
    size_t length = 0;
    CHECK(fifo >= 0);
    for (;;) {
        struct pollfd readable = {fifo, POLLIN, 0};
        int polled = poll(&readable, 1, HANG_GUARD_SECS * 1000);
        if (polled < 0 && errno == EINTR)
            continue;
        CHECK(polled == 1); /* 0: the winner never wrote */
        ssize_t n = read(fifo, written + length, sizeof(written) - 1 - length);
        if (n < 0 && errno == EAGAIN)
            continue; /* a writer has it open, and has not written yet */
        CHECK(n >= 0);
        length += (size_t)n;
        if (n == 0) /* no writer any more; the first poll only returns once one came */
            break;
        CHECK(length < sizeof(written) - 1);
    }
    written[length] = '\0';
    CHECK_STR(written, "mem");
    for (int i = 0; i < PROCESSES; i++)
        reap_ok(pids[i], "a racing process");
    CHECK(read(fifo, written, sizeof(written)) == 0);
    CHECK(close(fifo) == 0 && close(race.ready[0]) == 0 && close(race.answers[0]) == 0);
    CHECK_STR(root_read(WAKEALARM), "0");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=back"));
}

/* --- 2. Another process's request, and an alarm someone else set ---------------------- */

struct two_processes {
    int ready[2]; /* B: its capability query is done */
    int go[2];    /* A: its request is pending */
    int done[2];  /* B: refused as it should be */
};

static void ask_while_another_process_requests(void *arg)
{
    struct two_processes *pipes = arg;
    unsigned int mask = 0;
    CHECK(close(pipes->ready[0]) == 0 && close(pipes->go[1]) == 0 && close(pipes->done[0]) == 0);
    /* This process's first call: the library configures itself here, and queries the host
     * before A points sys/power/state at /dev/full (read, it never ends). */
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    CHECK(mask == MEM_BIT);
    signal_once(pipes->ready[1]);
    CHECK(await_signal(pipes->go[0]));
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, IN_PROGRESS);
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, NO_REQUEST);
    signal_once(pipes->done[1]);
}

static void another_processs_pending_request_is_refused_and_its_failure_leaves_anothers_alarm(void)
{
    /* Long enough for B's call and the administrator's alarm while A's request is pending
     * (checked below: the record still says pending after both). */
    root_host("freeze mem", "[platform] shutdown reboot", false);
    use_fake_root("3");
    struct two_processes pipes;
    make_pipe(pipes.ready);
    make_pipe(pipes.go);
    make_pipe(pipes.done);
    pid_t b = start_child(ask_while_another_process_requests, &pipes);
    CHECK(close(pipes.ready[1]) == 0 && close(pipes.go[0]) == 0 && close(pipes.done[1]) == 0);
    CHECK(await_signal(pipes.ready[0]));

    /* A, this process: its capability query, then a suspend that will fail (ENOSPC). */
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    replace_state_file_with_dev_full();
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK_STR(root_read(WAKEALARM), "1800000061");
    CHECK(record_has("pid=%d", (int)getpid()));
    signal_once(pipes.go[1]);
    CHECK(await_signal(pipes.done[0]));

    /* An administrator's rtcwake: the alarm is theirs now. */
    root_write(WAKEALARM, "1800007200");
    bool still_pending = record_has("state=pending");
    CHECK(still_pending); /* else this machine took longer than the delay, 3 s, for the above */

    char message[512];
    snprintf(message, sizeof(message), "Unable to write 'mem' to '%s': No space left on device", root_path(STATE));
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_SYSTEM_ERROR, VIR_FROM_NONE, message);
    CHECK(virNodeSuspendGetLastError()->int1 == ENOSPC);
    CHECK_STR(root_read(WAKEALARM), "1800007200");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=failed"));
    CHECK(record_has("last_error=%s", message));
    reap_ok(b, "process B");
    CHECK(close(pipes.ready[0]) == 0 && close(pipes.go[1]) == 0 && close(pipes.done[0]) == 0);
}

/* --- 3. A process killed while its request is pending --------------------------------- */

static void request_and_stay(void *arg)
{
    int *reported = arg;
    use_fake_root("3600"); /* pending for the whole case */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    signal_once(reported[1]);
    for (;;)
        pause();
}

static void request_of_a_process_killed_during_the_delay_is_settled_by_the_next_process(void)
{
    root_host("freeze mem", "[platform] shutdown reboot", false);
    int reported[2];
    int status;
    make_pipe(reported);
    pid_t a = start_child(request_and_stay, reported);
    CHECK(close(reported[1]) == 0);
    CHECK(await_signal(reported[0]));
    CHECK(close(reported[0]) == 0);
    CHECK(record_has("state=pending"));
    CHECK(record_has("pid=%d", (int)a));
    CHECK_STR(root_read(WAKEALARM), "1800003651");

    CHECK(kill(a, SIGKILL) == 0);
    CHECK(waitpid(a, &status, 0) == a);
    forget_child(a);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* A new process (this one: it has not called the library yet); its first call. */
    use_fake_root("0");
    unsigned int mask = 0;
    CHECK(virNodeSuspendGetTargetMask(&mask) == 0);
    printf("# after SIGKILL of process %d, the next process's first call left wakealarm '%s'\n", (int)a,
           root_read(WAKEALARM));
    printf("# and the record: %s\n", record_in_one_line());
    CHECK_STR(root_read(WAKEALARM), "0");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=abandoned"));
    CHECK(record_has("last_target=mem"));
    CHECK(record_has("last_error=process %d ended before the suspend started", (int)a));
    CHECK(!record_has("pid=%d", (int)a));

    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendWait() == 0);
    CHECK_STR(root_read(STATE), "mem");
    CHECK(record_has("last_outcome=back"));
}

/* --- 4. and 5. fork() ----------------------------------------------------------------- */

static void request_and_wait_in_the_child(void *arg)
{
    (void)arg;
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(record_has("pid=%d", (int)getpid()));
    CHECK(virNodeSuspendWait() == 0); /* carried out by a worker of the child's own */
    CHECK_STR(root_read(STATE), "mem");
    CHECK_STR(root_read(WAKEALARM), "0");
}

static void child_forked_after_a_finished_request_has_its_own_carried_out(void)
{
    root_host("freeze mem", "[platform] shutdown reboot", false);
    use_fake_root("0");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 60, 0) == 0);
    CHECK(virNodeSuspendWait() == 0);
    CHECK_STR(root_read(STATE), "mem");
    root_write(STATE, ""); /* the mask is cached: only the child's write will be seen here */
    WAIT_FOR(worker_is_parked);
    pid_t child = start_child(request_and_wait_in_the_child, NULL);
    reap_ok(child, "the child");
    CHECK_STR(root_read(STATE), "mem");
    CHECK(record_has("state=idle"));
    CHECK(record_has("last_outcome=back"));
}

static void wait_and_request_while_the_parents_request_is_pending(void *arg)
{
    (void)arg;
    /* The parent's request is not the child's: no waiting for it. */
    CHECK(virNodeSuspendWait() == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, NO_REQUEST);
    /* But it is the host's: in progress. */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, IN_PROGRESS);
}

static void child_forked_while_a_request_is_pending_neither_waits_for_it_nor_makes_another(void)
{
    root_host("freeze mem", "[platform] shutdown reboot", false);
    use_fake_root("3600"); /* pending for the whole case; the shortest duration is 3650 s */
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == 0);
    WAIT_FOR(worker_is_parked);
    pid_t child = start_child(wait_and_request_while_the_parents_request_is_pending, NULL);
    reap_ok(child, "the child");
    /* The child's copy of the request, gone with it, released neither lock nor alarm. */
    CHECK(record_has("state=pending"));
    CHECK(record_has("pid=%d", (int)getpid()));
    CHECK_STR(root_read(WAKEALARM), "1800003651");
    CHECK(virNodeSuspend(VIR_NODE_SUSPEND_TARGET_MEM, 3650, 0) == -1);
    CHECK_ERROR(VIR_ERR_OPERATION_INVALID, VIR_FROM_NONE, IN_PROGRESS);
}

int main(int argc, char **argv)
{
    static const struct harness_case cases[] = {
        {"4 processes x 8 threads racing on one host get one request",
         processes_and_threads_racing_on_one_host_get_one_request},
        {"another process's pending request is refused, and its failure leaves an alarm someone else set",
         another_processs_pending_request_is_refused_and_its_failure_leaves_anothers_alarm},
        {"the request of a process killed during the delay is settled by the next process's first call",
         request_of_a_process_killed_during_the_delay_is_settled_by_the_next_process},
        {"a child forked after a finished request has its own request carried out",
         child_forked_after_a_finished_request_has_its_own_carried_out},
        {"a child forked while a request is pending neither waits for it nor makes another",
         child_forked_while_a_request_is_pending_neither_waits_for_it_nor_makes_another},
    };
    size_t count = sizeof(cases) / sizeof(cases[0]);
    /* A child forked from a process whose worker thread runs (the last two cases) holds
     * what that thread allocated (its handle, name and start packet), with no thread left
     * to reach it from: memcheck and LeakSanitizer call it lost, though fork() did that,
     * not the library. Under them (meson passes --leak-checked), those cases are left out. */
    if (argc == 2 && strcmp(argv[1], "--leak-checked") == 0) {
        count -= 2;
        printf("# leak-checked: the cases that fork from a process with a worker thread are left out\n");
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--leak-checked]\n", argv[0]);
        return 2;
    }
    return harness_main(cases, count);
}
