@_exported import Device

extension Int {
    /// One more, or `Int.max` at `Int.max`: a count that a caller may set (an optimiser's steps, a BatchNorm's
    /// `num_batches_tracked`) and a step then adds to, which must not trap where it cannot grow.
    var countedOnce: Int { self == .max ? self : self + 1 }
}
