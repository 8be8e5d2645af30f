/*
 * os/backtrace.h: stacks with function names, of this thread or of another
 * thread of this process, and the last words of a thread that faults.
 *
 * Unwinding uses libunwind's local unwinder, which its manual documents as
 * async-signal-safe (unw_init_local, unw_step, unw_get_reg); naming uses
 * libunwind's unw_get_proc_name, which reads .symtab as well as .dynsym, so
 * static functions of serval and of the app have names (unless stripped).
 *
 * Another thread's stack: sv_bt_capture_thread sends that thread
 * SV_BT_SIGNAL; its handler unwinds into the thread's preallocated slot and
 * sets a flag. That handler does no I/O, takes no lock and allocates nothing:
 * it writes bytes into memory reserved for it, the same kind of act as the
 * self-pipe byte the other handlers write. Naming happens afterwards, on the
 * calling thread, in normal context.
 *
 * A fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) on a thread with a slot
 * unwinds into the slot's crash record, publishes it, and waits (at most
 * SV_BT_CRASH_WAIT_MS) for the process's main thread to log it; then the
 * default action runs, so the process dies of its own signal as before.
 */
#ifndef SV_OS_BACKTRACE_H
#define SV_OS_BACKTRACE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SV_BT_MAX 48
#define SV_BT_CRASH_WAIT_MS 2000
/* The capture signal (a real-time one nobody else uses; serving threads leave it unblocked). */
#define SV_BT_SIGNAL (SIGRTMIN + 5)

/* A captured stack: ip[0] is exact when exact0 (an interrupted pc), the rest are return addresses. */
typedef struct sv_bt {
    int n;
    bool exact0;
    void *ip[SV_BT_MAX];
} sv_bt_t;

/* A thread's capture slot; zero-initialised memory is a valid idle slot. */
typedef struct sv_bt_slot {
    _Atomic int want;        /* 1 while a capture is asked for */
    _Atomic int ready;       /* 1 once bt holds the answer */
    sv_bt_t bt;
    _Atomic int fault;       /* signal number of a fault on this thread, 0 = none */
    _Atomic int fault_logged;
    sv_bt_t crash;
    void *altstack;          /* the fault handler's stack (stack overflows) */
} sv_bt_slot_t;

/*
 * Install SV_BT_SIGNAL's handler and the fault handlers, and unwind once so
 * libunwind has loaded everything before any handler needs it. Per process
 * (after fork too); returns 0 or a negative errno.
 */
int sv_bt_init(void);
/* The calling thread uses slot (NULL: none) and gets an alternate signal stack. */
void sv_bt_thread_attach(sv_bt_slot_t *slot);
void sv_bt_thread_detach(void);
/* Unwind the calling thread (skipping this function). Returns frames stored. */
int sv_bt_capture_self(sv_bt_t *out);
/*
 * Ask thread tid of this process (which has attached slot) for its stack and
 * wait up to timeout_ms. Returns the frame count, or -ETIMEDOUT when the
 * thread did not answer (it blocks the signal, or a sanitizer defers it).
 */
int sv_bt_capture_thread(sv_bt_slot_t *slot, int tid, int timeout_ms);
/* "name+0xOFF (module)" for frame i of bt. */
void sv_bt_frame_name(const sv_bt_t *bt, int i, char *out, size_t cap);
/*
 * The fds libunwind keeps open for this process (its address-check pipe,
 * close-on-exec): a forked child that closes fds by keep list must keep them.
 * Returns how many (0..2).
 */
int sv_bt_fds(const int **fds);
/* Log each frame on its own line, indented: to the error log (stderr) when error, else stdout. */
void sv_bt_log(const sv_bt_t *bt, const char *indent, bool error);

#endif
