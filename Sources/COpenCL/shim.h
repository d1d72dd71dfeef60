#ifndef CLNN_COPENCL_SHIM_H
#define CLNN_COPENCL_SHIM_H
// CLNN targets the OpenCL 1.2 API: every driver we care about (POCL, rusticl, NVIDIA, AMD, Intel) offers it,
// and it keeps clCreateCommandQueue undeprecated.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif
