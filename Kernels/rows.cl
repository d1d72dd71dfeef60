// Rows read through an index list: a minibatch's rows of a resident dataset, read in place (no gathered copy).
// Stored row s is order[offset + s], clamped to 0..<rows so that a bad index can never read outside the source
// (the host side is HostRowOrder in Ops/Gather.swift).
#ifndef CLNN_ROWS_CL
#define CLNN_ROWS_CL
size_t stored_row(__global const float* order, const int offset, const int s, const int rows)
{
    return (size_t)clamp((int)order[offset + s], 0, rows - 1);
}
#endif
