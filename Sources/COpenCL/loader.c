// Run-time loading of the OpenCL ICD loader, so that the binary starts on machines without one.
// Each entry point CLNN uses is defined here with OpenCL's own signature and forwards to the symbol of the same name
// in the library found by dlopen. CLNN_OPENCL_LIBRARY names the one library to use instead of the defaults.
#define _GNU_SOURCE  // RTLD_NEXT
#include "COpenCL.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

static void *library;       // a dlopen handle, or RTLD_NEXT when the process already had an OpenCL
static const char *library_name;
static char load_error[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    // CLNN_OPENCL_LIBRARY, when set, is the only library tried (a path or a soname).
    const char *chosen = getenv("CLNN_OPENCL_LIBRARY");
    const char *defaults[] = {
#if defined(__APPLE__)
        "/System/Library/Frameworks/OpenCL.framework/OpenCL",
#else
        "libOpenCL.so.1", "libOpenCL.so",
#endif
    };
    const char **candidates = defaults;
    size_t count = sizeof defaults / sizeof defaults[0];
    if (chosen && chosen[0]) {
        candidates = &chosen;
        count = 1;
    } else if (dlsym(RTLD_NEXT, "clGetPlatformIDs")) {
        // NOTE: an OpenCL already in the process wins, as it would for a linked binary: a tool such as oclgrind
        // preloads its own (LD_PRELOAD), and loading the ICD loader beside it would mix two implementations (a
        // driver's internal cl* calls would land in the preloaded one and crash).
        library = RTLD_NEXT;
        library_name = "(already loaded in the process)";
        return;
    }
    const char *last = "no library name to try";
    for (size_t i = 0; i < count; i++) {
        library = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (library) {
            library_name = candidates[i];
            return;
        }
        const char *why = dlerror();
        if (why) last = why;
    }
    snprintf(load_error, sizeof load_error, "%s", last);
}

const char *clnn_opencl_load_error(void) {
    pthread_once(&once, load);
    return library ? NULL : load_error;
}

const char *clnn_opencl_library(void) {
    pthread_once(&once, load);
    return library_name;
}

static const char *missing;  // the first entry point the library lacks (atomic: any thread may look one up)

const char *clnn_opencl_missing_symbol(void) { return __atomic_load_n(&missing, __ATOMIC_ACQUIRE); }

static void *symbol(const char *name) {
    pthread_once(&once, load);
    void *found = library == RTLD_NEXT ? dlsym(RTLD_NEXT, name)  // the next definition after ours
                : library ? dlsym(library, name) : NULL;
    const char *none = NULL;
    if (!found && library)
        __atomic_compare_exchange_n(&missing, &none, name, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return found;
}

// Each entry point looks its target up on its first call, from whichever threads make it at once: the pointer is
// loaded and stored atomically (every thread finds the same one).
#define RESOLVED(type, name, params)                                                  \
    static type(*fn) params;                                                          \
    type(*target) params = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);                     \
    if (!target) {                                                                    \
        target = (type(*) params)symbol(#name);                                       \
        __atomic_store_n(&fn, target, __ATOMIC_RELEASE);                              \
    }

// FORWARD(return type, name, value when unavailable, (parameters), (arguments))
#define FORWARD(type, name, fail, params, args)                       \
    type name params {                                                \
        RESOLVED(type, name, params)                                  \
        if (!target) return fail;                                     \
        return target args;                                           \
    }

// Functions that hand back an object report failure through their errcode_ret.
#define FORWARD_OBJECT(type, name, params, args, errcode)             \
    type name params {                                                \
        RESOLVED(type, name, params)                                  \
        if (!target) {                                                \
            if (errcode) *errcode = CL_PLATFORM_NOT_FOUND_KHR;        \
            return NULL;                                              \
        }                                                             \
        return target args;                                           \
    }

FORWARD(cl_int, clGetPlatformIDs, CL_PLATFORM_NOT_FOUND_KHR,
        (cl_uint n, cl_platform_id *platforms, cl_uint *count), (n, platforms, count))
FORWARD(cl_int, clGetPlatformInfo, CL_INVALID_PLATFORM,
        (cl_platform_id p, cl_platform_info param, size_t size, void *value, size_t *ret), (p, param, size, value, ret))
FORWARD(cl_int, clGetDeviceIDs, CL_INVALID_PLATFORM,
        (cl_platform_id p, cl_device_type type, cl_uint n, cl_device_id *devices, cl_uint *count),
        (p, type, n, devices, count))
FORWARD(cl_int, clGetDeviceInfo, CL_INVALID_DEVICE,
        (cl_device_id d, cl_device_info param, size_t size, void *value, size_t *ret), (d, param, size, value, ret))
FORWARD_OBJECT(cl_context, clCreateContext,
        (const cl_context_properties *props, cl_uint n, const cl_device_id *devices,
         void (CL_CALLBACK *notify)(const char *, const void *, size_t, void *), void *user, cl_int *err),
        (props, n, devices, notify, user, err), err)
FORWARD(cl_int, clReleaseContext, CL_INVALID_CONTEXT, (cl_context c), (c))
FORWARD_OBJECT(cl_command_queue, clCreateCommandQueue,
        (cl_context c, cl_device_id d, cl_command_queue_properties props, cl_int *err), (c, d, props, err), err)
FORWARD(cl_int, clReleaseCommandQueue, CL_INVALID_COMMAND_QUEUE, (cl_command_queue q), (q))
FORWARD(cl_int, clFinish, CL_INVALID_COMMAND_QUEUE, (cl_command_queue q), (q))
FORWARD_OBJECT(cl_mem, clCreateBuffer,
        (cl_context c, cl_mem_flags flags, size_t size, void *host, cl_int *err), (c, flags, size, host, err), err)
FORWARD(cl_int, clReleaseMemObject, CL_INVALID_MEM_OBJECT, (cl_mem m), (m))
FORWARD_OBJECT(cl_mem, clCreateSubBuffer,
        (cl_mem m, cl_mem_flags flags, cl_buffer_create_type type, const void *info, cl_int *err),
        (m, flags, type, info, err), err)
FORWARD(cl_int, clEnqueueWriteBuffer, CL_INVALID_COMMAND_QUEUE,
        (cl_command_queue q, cl_mem m, cl_bool blocking, size_t offset, size_t size, const void *ptr,
         cl_uint nwait, const cl_event *wait, cl_event *event),
        (q, m, blocking, offset, size, ptr, nwait, wait, event))
FORWARD(cl_int, clEnqueueReadBuffer, CL_INVALID_COMMAND_QUEUE,
        (cl_command_queue q, cl_mem m, cl_bool blocking, size_t offset, size_t size, void *ptr,
         cl_uint nwait, const cl_event *wait, cl_event *event),
        (q, m, blocking, offset, size, ptr, nwait, wait, event))
FORWARD(cl_int, clEnqueueCopyBuffer, CL_INVALID_COMMAND_QUEUE,
        (cl_command_queue q, cl_mem src, cl_mem dst, size_t src_offset, size_t dst_offset, size_t size,
         cl_uint nwait, const cl_event *wait, cl_event *event),
        (q, src, dst, src_offset, dst_offset, size, nwait, wait, event))
FORWARD_OBJECT(cl_program, clCreateProgramWithSource,
        (cl_context c, cl_uint n, const char **strings, const size_t *lengths, cl_int *err),
        (c, n, strings, lengths, err), err)
FORWARD_OBJECT(cl_program, clCreateProgramWithBinary,
        (cl_context c, cl_uint n, const cl_device_id *devices, const size_t *lengths, const unsigned char **binaries,
         cl_int *status, cl_int *err),
        (c, n, devices, lengths, binaries, status, err), err)
FORWARD(cl_int, clBuildProgram, CL_INVALID_PROGRAM,
        (cl_program p, cl_uint n, const cl_device_id *devices, const char *options,
         void (CL_CALLBACK *notify)(cl_program, void *), void *user),
        (p, n, devices, options, notify, user))
FORWARD(cl_int, clGetProgramBuildInfo, CL_INVALID_PROGRAM,
        (cl_program p, cl_device_id d, cl_program_build_info param, size_t size, void *value, size_t *ret),
        (p, d, param, size, value, ret))
FORWARD(cl_int, clGetProgramInfo, CL_INVALID_PROGRAM,
        (cl_program p, cl_program_info param, size_t size, void *value, size_t *ret), (p, param, size, value, ret))
FORWARD(cl_int, clReleaseProgram, CL_INVALID_PROGRAM, (cl_program p), (p))
FORWARD_OBJECT(cl_kernel, clCreateKernel, (cl_program p, const char *name, cl_int *err), (p, name, err), err)
FORWARD(cl_int, clReleaseKernel, CL_INVALID_KERNEL, (cl_kernel k), (k))
FORWARD(cl_int, clSetKernelArg, CL_INVALID_KERNEL,
        (cl_kernel k, cl_uint index, size_t size, const void *value), (k, index, size, value))
FORWARD(cl_int, clGetKernelInfo, CL_INVALID_KERNEL,
        (cl_kernel k, cl_kernel_info param, size_t size, void *value, size_t *ret), (k, param, size, value, ret))
FORWARD(cl_int, clGetKernelArgInfo, CL_INVALID_KERNEL,
        (cl_kernel k, cl_uint index, cl_kernel_arg_info param, size_t size, void *value, size_t *ret),
        (k, index, param, size, value, ret))
FORWARD(cl_int, clGetKernelWorkGroupInfo, CL_INVALID_KERNEL,
        (cl_kernel k, cl_device_id d, cl_kernel_work_group_info param, size_t size, void *value, size_t *ret),
        (k, d, param, size, value, ret))
FORWARD(cl_int, clEnqueueNDRangeKernel, CL_INVALID_COMMAND_QUEUE,
        (cl_command_queue q, cl_kernel k, cl_uint dims, const size_t *offset, const size_t *global,
         const size_t *local, cl_uint nwait, const cl_event *wait, cl_event *event),
        (q, k, dims, offset, global, local, nwait, wait, event))
FORWARD(cl_int, clWaitForEvents, CL_INVALID_EVENT, (cl_uint n, const cl_event *events), (n, events))
FORWARD(cl_int, clGetEventProfilingInfo, CL_INVALID_EVENT,
        (cl_event e, cl_profiling_info param, size_t size, void *value, size_t *ret), (e, param, size, value, ret))
FORWARD(cl_int, clReleaseEvent, CL_INVALID_EVENT, (cl_event e), (e))
FORWARD(cl_int, clFlush, CL_INVALID_COMMAND_QUEUE, (cl_command_queue q), (q))
FORWARD_OBJECT(cl_event, clCreateUserEvent, (cl_context c, cl_int *err), (c, err), err)
FORWARD(cl_int, clSetUserEventStatus, CL_INVALID_EVENT, (cl_event e, cl_int status), (e, status))
FORWARD(cl_int, clSetEventCallback, CL_INVALID_EVENT,
        (cl_event e, cl_int type, void (CL_CALLBACK *notify)(cl_event, cl_int, void *), void *user),
        (e, type, notify, user))
