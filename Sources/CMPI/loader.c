#include "cmpi.h"
#include <dlfcn.h>
#include <stdio.h>

typedef void *Handle;  // Open MPI: MPI_Comm, MPI_Datatype, MPI_Op are pointers to its global objects.
static int (*p_init)(int *, char ***);
static int (*p_initialized)(int *);
static int (*p_rank)(Handle, int *);
static int (*p_size)(Handle, int *);
static int (*p_allreduce)(const void *, void *, int, Handle, Handle, Handle);
static int (*p_bcast)(void *, int, Handle, int, Handle);
static int (*p_allgather)(const void *, int, Handle, void *, int, Handle, Handle);
static int (*p_finalize)(void);
static int (*p_abort)(Handle, int);
static Handle comm_world, type_float, type_double, op_sum;
static int loaded = 0;

int clnn_mpi_load(char *error, size_t capacity) {
    if (loaded) return 0;
    // NOTE: RTLD_GLOBAL: Open MPI's components (dlopened by libmpi itself) resolve libmpi's symbols globally.
    void *lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) lib = dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(error, capacity, "cannot load Open MPI's libmpi.so.40 (%s); install openmpi-bin", dlerror());
        return -1;
    }
#define SYM(var, name) do { *(void **)(&var) = dlsym(lib, name); \
    if (!var) { snprintf(error, capacity, "libmpi lacks %s (not Open MPI?)", name); return -1; } } while (0)
    SYM(p_init, "MPI_Init"); SYM(p_initialized, "MPI_Initialized"); SYM(p_rank, "MPI_Comm_rank");
    SYM(p_size, "MPI_Comm_size"); SYM(p_allreduce, "MPI_Allreduce"); SYM(p_bcast, "MPI_Bcast");
    SYM(p_allgather, "MPI_Allgather"); SYM(p_finalize, "MPI_Finalize"); SYM(p_abort, "MPI_Abort");
    SYM(comm_world, "ompi_mpi_comm_world"); SYM(type_float, "ompi_mpi_float"); SYM(type_double, "ompi_mpi_double");
    SYM(op_sum, "ompi_mpi_op_sum");
#undef SYM
    loaded = 1;
    return 0;
}

int clnn_mpi_init(void) {
    int done = 0;
    p_initialized(&done);
    return done ? 0 : p_init(NULL, NULL);
}
int clnn_mpi_rank(int *rank) { return p_rank(comm_world, rank); }
int clnn_mpi_size(int *size) { return p_size(comm_world, size); }
// NOTE: MPI_IN_PLACE is (void *)1 in Open MPI.
int clnn_mpi_allreduce_sum_float(float *data, int count) {
    return p_allreduce((void *)1, data, count, type_float, op_sum, comm_world);
}
int clnn_mpi_allreduce_sum_double(double *data, int count) {
    return p_allreduce((void *)1, data, count, type_double, op_sum, comm_world);
}
int clnn_mpi_bcast_float(float *data, int count, int root) {
    return p_bcast(data, count, type_float, root, comm_world);
}
int clnn_mpi_allgather_double(const double *data, int count, double *out) {
    return p_allgather(data, count, type_double, out, count, type_double, comm_world);
}
int clnn_mpi_finalize(void) { return p_finalize(); }
void clnn_mpi_abort(int code) { if (loaded) p_abort(comm_world, code); }
