// Layouts of the strided kernels (pointwise.cl, reduce.cl). The operands share the axes `shape` (rank ≤ 8, merged on
// the host where every operand allows; more go as a launch per index of the leading ones, or through a dense copy
// for a reduction: Ops/Strided.swift); the last one has `inner` elements and the others together `rows` rows. An
// operand NAME is a buffer with NAME_offset and NAME_strides: element (i0, …, i_{rank-1}) sits at
// NAME_offset + Σ i_k · NAME_strides[k] (stride 0 along a broadcast axis).
//
// Two ways to cover the elements, chosen per device when the program is built:
// - CLNN_ROW_LOOP (CPU-type devices): work-item (c, row) loops over ROW_CHUNK neighbouring elements of its row, a
//   loop the compiler vectorises; global = (⌈inner / ROW_CHUNK⌉, rows). (Both come from the host's header, with
//   the op tables: StridedOperands in Sources/Device/Ops/Strided.swift.)
// - otherwise (GPUs): work-item (j, row) is element j of row `row`, so neighbouring work-items read neighbouring
//   elements; global = (inner, rows), rounded up to the work-group size.

#define MAX_RANK 8

#define AXES const int rank, const int8 shape, const int inner, const int rows
#define LAYOUT(NAME) const int NAME##_offset, const int8 NAME##_strides

// The offset of the first element of row `row` in a layout.
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

// This work-item's row (it returns when past the last).
#define ROW const int row = get_global_id(1); if (row >= rows) return
// NAME_base: operand NAME's offset of the row's first element; NAME_step: its stride along the row.
#define BASE(NAME) const int NAME##_base = NAME##_offset + row_start(row, rank, shape, NAME##_strides), \
                             NAME##_step = last_stride(rank, NAME##_strides)
// Operand NAME's element j of the row.
#define AT(NAME) NAME[NAME##_base + j * NAME##_step]

#ifdef CLNN_ROW_LOOP
#define EACH_ELEMENT const int j0 = get_global_id(0) * ROW_CHUNK, j1 = min(inner, j0 + ROW_CHUNK); \
    for (int j = j0; j < j1; ++j)
#else
#define EACH_ELEMENT const int j = get_global_id(0); if (j < inner)
#endif
