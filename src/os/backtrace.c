/* backtrace.c: stacks with function names via libunwind, the capture signal and the fault handler (backtrace.h). */
#define UNW_LOCAL_ONLY
#include "os/backtrace.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <libunwind.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "core/log.h"

#define ALTSTACK_SIZE (64 * 1024)

static __thread sv_bt_slot_t *my_slot;

/*
 * libunwind opens a pipe at its first local unwind (to check addresses) and
 * keeps the fd numbers in static memory. A child that closes fds by keep
 * list must keep these, or libunwind would later write into, or close,
 * whatever fd then has that number. Found by looking at the fds around that
 * first use (in normal context, never in a handler).
 */
static int unw_fds[2] = {-1, -1};
static bool unw_ready;

static void fd_set_of(unsigned char *seen, int max)
{
    memset(seen, 0, (size_t)max);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int self = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < max && fd != self)
            seen[fd] = 1;
    }
    closedir(d);
}

static void unwind_ready(void)
{
    enum { MAXFD = 4096 };
    static unsigned char before[MAXFD], after[MAXFD];
    if (unw_ready)
        return;
    unw_ready = true;
    fd_set_of(before, MAXFD);
    unw_context_t ctx;
    unw_cursor_t cur;
    if (unw_getcontext(&ctx) == 0 && unw_init_local(&cur, &ctx) == 0)
        (void)unw_step(&cur);
    fd_set_of(after, MAXFD);
    for (int fd = 0, n = 0; fd < MAXFD && n < 2; fd++)
        if (after[fd] && !before[fd])
            unw_fds[n++] = fd;
}

int sv_bt_fds(const int **fds)
{
    *fds = unw_fds;
    return unw_fds[1] >= 0 ? 2 : unw_fds[0] >= 0 ? 1 : 0;
}
static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static int record(unw_cursor_t *cur, sv_bt_t *out)
{
    unw_word_t ip;
    do {
        if (unw_get_reg(cur, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        out->ip[out->n++] = (void *)ip;
    } while (out->n < SV_BT_MAX && unw_step(cur) > 0);
    return out->n;
}

/*
 * Unwind the interrupted code from the context the kernel saved. TSan runs
 * an asynchronous handler later, from its own code, with a stale context:
 * there the handler's own stack is walked instead (sanitizer builds only).
 */
static int unwind_from_handler(sv_bt_t *out, void *uc)
{
    unw_context_t ctx;
    unw_cursor_t cur;
    out->n = 0;
    out->exact0 = false;
#if defined(__SANITIZE_THREAD__)
    (void)uc;
    if (unw_getcontext(&ctx) < 0 || unw_init_local(&cur, &ctx) < 0)
        return 0;
#else
    memcpy(&ctx, uc, sizeof(ctx) < sizeof(ucontext_t) ? sizeof(ctx) : sizeof(ucontext_t));
    if (unw_init_local2(&cur, &ctx, UNW_INIT_SIGNAL_FRAME) < 0)
        return 0;
    out->exact0 = true;
#endif
    return record(&cur, out);
}

static void on_capture(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si;
    int saved = errno;
    sv_bt_slot_t *slot = my_slot;
    if (slot && atomic_load_explicit(&slot->want, memory_order_acquire)) {
        unwind_from_handler(&slot->bt, uc);
        atomic_store_explicit(&slot->want, 0, memory_order_relaxed);
        atomic_store_explicit(&slot->ready, 1, memory_order_release);
    }
    errno = saved;
}

static void die_of(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    /* blocked until the handler returns; a fault then recurs on return anyway */
    raise(sig);
}

/*
 * A fault: record the stack, let the main thread log it with the request
 * (naming and formatting are not async-signal-safe, so they happen there),
 * then die of the signal. The wait is bounded: a main thread that cannot
 * answer (it faulted itself, or holds a lock the fault left taken) costs
 * at most SV_BT_CRASH_WAIT_MS.
 */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    sv_bt_slot_t *slot = my_slot;
    int expected = 0;
    if (!slot || !atomic_compare_exchange_strong(&slot->fault, &expected, -1)) {
        die_of(sig);
        return;
    }
    unwind_from_handler(&slot->crash, uc);
    atomic_store_explicit(&slot->fault, sig, memory_order_release);
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < SV_BT_CRASH_WAIT_MS && !atomic_load_explicit(&slot->fault_logged, memory_order_acquire);
         i++)
        nanosleep(&ms, NULL);
    die_of(sig);
}

int sv_bt_init(void)
{
    unwind_ready();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_capture;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SV_BT_SIGNAL, &sa, NULL) < 0)
        return -errno;
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    for (size_t i = 0; i < sizeof(fault_signals) / sizeof(fault_signals[0]); i++)
        if (sigaction(fault_signals[i], &sa, NULL) < 0)
            return -errno;
    /* the first unwind and lookup load what libunwind needs: never first inside a handler */
    sv_bt_t warm;
    sv_bt_capture_self(&warm);
    char name[64];
    if (warm.n)
        sv_bt_frame_name(&warm, 0, name, sizeof(name));
    return 0;
}

void sv_bt_thread_attach(sv_bt_slot_t *slot)
{
    my_slot = slot;
    if (!slot || slot->altstack)
        return;
    slot->altstack = malloc(ALTSTACK_SIZE);
    if (!slot->altstack)
        return;
    stack_t ss = {.ss_sp = slot->altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        free(slot->altstack);
        slot->altstack = NULL;
    }
}

void sv_bt_thread_detach(void)
{
    sv_bt_slot_t *slot = my_slot;
    my_slot = NULL;
    if (!slot || !slot->altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(slot->altstack);
    slot->altstack = NULL;
}

int sv_bt_capture_self(sv_bt_t *out)
{
    unwind_ready();
    unw_context_t ctx;
    unw_cursor_t cur;
    unw_word_t ip;
    out->n = 0;
    out->exact0 = false;
    if (unw_getcontext(&ctx) < 0 || unw_init_local(&cur, &ctx) < 0)
        return 0;
    while (out->n < SV_BT_MAX && unw_step(&cur) > 0) { /* the first step skips this function */
        if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        out->ip[out->n++] = (void *)ip;
    }
    return out->n;
}

int sv_bt_capture_thread(sv_bt_slot_t *slot, int tid, int timeout_ms)
{
    atomic_store(&slot->ready, 0);
    atomic_store_explicit(&slot->want, 1, memory_order_release);
    if (syscall(SYS_tgkill, getpid(), tid, SV_BT_SIGNAL) < 0) {
        atomic_store(&slot->want, 0);
        return -errno;
    }
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < timeout_ms; i++) {
        if (atomic_load_explicit(&slot->ready, memory_order_acquire))
            return slot->bt.n;
        nanosleep(&ms, NULL);
    }
    /* too late: a handler that runs now finds nothing asked */
    int was = 1;
    if (!atomic_compare_exchange_strong(&slot->want, &was, 0) &&
        atomic_load_explicit(&slot->ready, memory_order_acquire))
        return slot->bt.n;
    return -ETIMEDOUT;
}

/* Name an address through a cursor whose ip we set: libunwind looks it up in the mapped file's symbols. */
static int proc_name(void *addr, char *buf, size_t cap, unw_word_t *off)
{
    unwind_ready();
    unw_context_t ctx;
    unw_cursor_t cur;
    if (unw_getcontext(&ctx) < 0 || unw_init_local(&cur, &ctx) < 0 ||
        unw_set_reg(&cur, UNW_REG_IP, (unw_word_t)addr) < 0)
        return -1;
    return unw_get_proc_name(&cur, buf, cap, off) == 0 ? 0 : -1;
}

/* The module's file name; the executable's own (the process title overwrites argv[0], which dladdr reports). */
static const char *module_name(const Dl_info *di)
{
    static char exe[64];
    Dl_info self;
    if (!exe[0]) {
        char path[4096];
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        path[n > 0 ? n : 0] = '\0';
        const char *slash = strrchr(path, '/');
        snprintf(exe, sizeof(exe), "%.63s", n > 0 ? (slash ? slash + 1 : path) : "serval");
    }
    if (dladdr((void *)sv_bt_init, &self) && self.dli_fbase == di->dli_fbase)
        return exe;
    if (!di->dli_fname || !*di->dli_fname)
        return "?";
    const char *slash = strrchr(di->dli_fname, '/');
    return slash ? slash + 1 : di->dli_fname;
}

/*
 * In a stripped library (libc) libunwind only has the exported symbols and
 * names an internal function after the exported one before it. An exported
 * symbol's size tells: past its end the name is wrong.
 */
static bool name_fits(const char *name, uintptr_t start, uintptr_t look)
{
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    if (!dladdr1((void *)start, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym || !di.dli_sname)
        return true; /* not exported: a .symtab entry of an unstripped file */
    return strcmp(di.dli_sname, name) != 0 || sym->st_size == 0 || look - start < sym->st_size;
}

void sv_bt_frame_name(const sv_bt_t *bt, int i, char *out, size_t cap)
{
    /* a return address may be past the end of a call to a noreturn function: look up the call */
    uintptr_t pc = (uintptr_t)bt->ip[i];
    uintptr_t look = (i == 0 && bt->exact0) || pc == 0 ? pc : pc - 1;
    char name[256];
    unw_word_t off = 0;
    Dl_info di;
    memset(&di, 0, sizeof(di));
    bool in_module = dladdr((void *)look, &di) != 0;
    const char *mod = in_module ? module_name(&di) : "?";
    if (proc_name((void *)look, name, sizeof(name), &off) == 0 && name_fits(name, look - off, look))
        snprintf(out, cap, "%s+0x%lx (%s)", name, (unsigned long)(off + (pc - look)), mod);
    else if (in_module && di.dli_fbase)
        snprintf(out, cap, "%p (%s+0x%lx)", bt->ip[i], mod, (unsigned long)(pc - (uintptr_t)di.dli_fbase));
    else
        snprintf(out, cap, "%p", bt->ip[i]);
}

void sv_bt_log(const sv_bt_t *bt, const char *indent, bool error)
{
    char name[400];
    for (int i = 0; i < bt->n; i++) {
        sv_bt_frame_name(bt, i, name, sizeof(name));
        if (error)
            sv_log_error("%s#%d %s", indent, i, name);
        else
            sv_log("%s#%d %s", indent, i, name);
    }
}
