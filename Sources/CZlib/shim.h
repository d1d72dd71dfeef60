#ifndef CLNN_CZLIB_SHIM_H
#define CLNN_CZLIB_SHIM_H
#include <zlib.h>
#endif
