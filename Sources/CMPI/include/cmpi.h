// Open MPI, loaded at run time (dlopen of libmpi.so.40) so that clnn needs no MPI library unless it runs under mpirun.
// Only Open MPI's ABI (its handles are pointers to global objects); MPICH's integer handles are not supported.
#ifndef CLNN_CMPI_H
#define CLNN_CMPI_H
#include <stddef.h>

/// Loads libmpi and its symbols; 0 on success, else -1 with a reason in `error`.
int clnn_mpi_load(char *error, size_t capacity);
/// MPI_Init (once); returns MPI's status.
int clnn_mpi_init(void);
int clnn_mpi_rank(int *rank);
int clnn_mpi_size(int *size);
/// In-place sum of `count` floats over every rank.
int clnn_mpi_allreduce_sum_float(float *data, int count);
/// In-place sum of `count` doubles over every rank.
int clnn_mpi_allreduce_sum_double(double *data, int count);
/// Root's `count` floats to every rank.
int clnn_mpi_bcast_float(float *data, int count, int root);
/// Every rank's `count` doubles, gathered in rank order into `out` (size · count).
int clnn_mpi_allgather_double(const double *data, int count, double *out);
int clnn_mpi_finalize(void);
/// Ends the whole job (every rank) with `code`.
void clnn_mpi_abort(int code);
#endif
