// The CPU products' worker threads. A batch-sized product takes tens of microseconds: waking a parked thread per
// product (GCD's concurrentPerform on this 2-core KVM: 2 x 100 us of work took 187 us, not 100) costs what
// splitting it saves. So the workers spin a while for the next job (a training step's products come every few
// tens of microseconds) and only then park on a condition variable; the caller runs chunks too.
//
// One job at a time: a caller that finds the pool busy (another thread's job, or a chunk that itself asks for
// the pool) runs its chunks inline. Every worker acknowledges every job, so nothing touches a job's state after
// clnn_pool_run returns.
#include "cgemm.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 63
// How long an idle worker spins for the next job before it parks.
#define SPIN_NANOSECONDS 300000

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static atomic_uint generation;
static atomic_int next_chunk;
static atomic_int acknowledged;
static int job_chunks;
static clnn_pool_body job_body;
static void *job_context;
static int sleepers;  // under park_lock
static int workers;
static pthread_once_t started = PTHREAD_ONCE_INIT;

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long long nanoseconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void run_chunks(void)
{
    for (;;) {
        const int chunk = atomic_fetch_add_explicit(&next_chunk, 1, memory_order_relaxed);
        if (chunk >= job_chunks) return;
        job_body(job_context, chunk);
    }
}

static void *worker(void *unused)
{
    (void)unused;
    unsigned seen = 0;
    for (;;) {
        unsigned now = atomic_load_explicit(&generation, memory_order_acquire);
        if (now == seen) {
            const long long until = nanoseconds() + SPIN_NANOSECONDS;
            for (int spins = 1; (now = atomic_load_explicit(&generation, memory_order_acquire)) == seen; spins++) {
                relax();
                if ((spins & 255) == 0 && nanoseconds() > until) break;
            }
        }
        if (now == seen) {
            pthread_mutex_lock(&park_lock);
            sleepers++;
            while ((now = atomic_load_explicit(&generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&park_cond, &park_lock);
            sleepers--;
            pthread_mutex_unlock(&park_lock);
        }
        seen = now;
        run_chunks();
        atomic_fetch_add_explicit(&acknowledged, 1, memory_order_release);
    }
    return NULL;
}

static void start(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    // CLNN_THREADS caps the threads (caller included) the CPU products run on: a whole number >= 1 and nothing else
    // ("4x", "0", "-2" are ignored, as HostParallel.swift's check reports).
    const char *cap = getenv("CLNN_THREADS");
    if (cap && *cap >= '0' && *cap <= '9') {
        char *end = NULL;
        long n = strtol(cap, &end, 10);
        if (*end == '\0' && n > 0 && n < cores) cores = n;
    }
    int wanted = cores > 1 ? (int)(cores - 1 < MAX_WORKERS ? cores - 1 : MAX_WORKERS) : 0;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < wanted; i++) {
        pthread_t thread;
        if (pthread_create(&thread, &attributes, worker, NULL) != 0) break;  // fewer workers: still correct
        workers++;
    }
    pthread_attr_destroy(&attributes);
}

int clnn_pool_threads(void)
{
    pthread_once(&started, start);
    return workers + 1;
}

void clnn_pool_run(int chunks, clnn_pool_body body, void *context)
{
    pthread_once(&started, start);
    if (chunks <= 0) return;
    if (chunks == 1 || workers == 0 || pthread_mutex_trylock(&job_lock) != 0) {
        for (int chunk = 0; chunk < chunks; chunk++) body(context, chunk);
        return;
    }
    job_chunks = chunks;
    job_body = body;
    job_context = context;
    atomic_store_explicit(&next_chunk, 0, memory_order_relaxed);
    atomic_store_explicit(&acknowledged, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_mutex_lock(&park_lock);
    if (sleepers > 0) pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    run_chunks();
    while (atomic_load_explicit(&acknowledged, memory_order_acquire) < workers) relax();
    pthread_mutex_unlock(&job_lock);
}
