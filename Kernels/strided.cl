// Layouts of the strided kernels (pointwise.cl, reduce.cl): an operand NAME is a buffer with NAME_offset and
// NAME_strides; element (i0, …, i_{rank-1}) sits at NAME_offset + Σ i_k · NAME_strides[k]. The shared axes are
// `shape` (rank ≤ 8, merged on the host where every operand allows); the last one has `inner` elements.
// global = (inner, rows): work-item (j, row) is element j of row `row`, the index over every axis but the last.

#define MAX_RANK 8

// Offset of the first element of row `row` (the index over every axis but the last), and the last axis' stride.
inline int row_start(int row, const int rank, const int8 shape, const int8 strides)
{
    int s[MAX_RANK], t[MAX_RANK];
    vstore8(shape, 0, s);
    vstore8(strides, 0, t);
    int offset = 0;
    for (int k = rank - 2; k >= 0; --k) {
        offset += (row % s[k]) * t[k];
        row /= s[k];
    }
    return offset;
}

inline int last_stride(const int rank, const int8 strides)
{
    int t[MAX_RANK];
    vstore8(strides, 0, t);
    return t[rank - 1];
}

// The element of operand NAME at (row, j).
#define AT(NAME) NAME[NAME##_offset + row_start(row, rank, shape, NAME##_strides) + j * last_stride(rank, NAME##_strides)]
#define LAYOUT(NAME) const int NAME##_offset, const int8 NAME##_strides
#define INDEX const int j = get_global_id(0), row = get_global_id(1); if (j >= inner) return

