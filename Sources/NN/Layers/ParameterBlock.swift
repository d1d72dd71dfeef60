/// A model's parameters laid out in two flat buffers on one device — values and gradients — each parameter's value
/// and gradient a view into them (llm.c's `malloc_and_point_parameters`). A `Sequential` makes its block when it is
/// built and when it moves; the parameters' tensors are rebound in place, so a tensor captured from a parameter
/// stays the parameter's. An optimiser steps the whole block in one launch (a run of its parameters in one, over a
/// `region`, when it skips some) and keeps only its own state (laid out alike: `stateArena`); a data-parallel trainer
/// exchanges gradients and weights one flat copy at a time.
public final class ParameterBlock {
    /// The flat values and gradients (every parameter, with alignment gaps that stay zero). Gradients written into
    /// `grads` by hand (an all-reduce of your own) go after `materialiseGradients()`, which marks every parameter's
    /// as computed: an optimiser leaves a parameter whose gradient no backward computed since `zeroGrad()` as it is.
    public let values: Tensor, grads: Tensor
    /// The parameters, in layout order.
    public let parameters: [Parameter]
    /// The device, and the views' alignment in floats.
    public let device: DeviceTag, alignment: Int
    private let valueViews: [Tensor], gradViews: [Tensor]
    /// Where each parameter starts in the flat buffers.
    private let offsets: [Int]

    /// Lays `parameters` (all on one device) out, views aligned to `alignment` floats (at least the device's own),
    /// keeping their values and gradients.
    /// - Throws: `DeviceError.invalidArgument` when the parameters do not share a device.
    public init(_ parameters: [Parameter], alignment: Int = 1) throws {
        guard let device = parameters.first?.device, parameters.allSatisfy({ $0.device == device }) else {
            throw DeviceError.invalidArgument(op: "ParameterBlock", "the parameters must share a device")
        }
        let shapes = parameters.map(\.value.shape)
        let align = max(alignment, try Tensor.arenaAlignment(on: device))
        let values = try Tensor.arena(shapes, on: device, alignment: align)
        let grads = try Tensor.arena(shapes, on: device, alignment: align)
        offsets = try Tensor.arenaLayout(shapes, on: device, alignment: align).offsets
        for (i, p) in parameters.enumerated() { try p.join(value: values.views[i], grad: grads.views[i]) }
        (self.values, self.grads, valueViews, gradViews) = (values.flat, grads.flat, values.views, grads.views)
        (self.parameters, self.device, self.alignment) = (parameters, device, align)
        for p in parameters { p.block = self }
    }

    /// Whether `parameters` are exactly this block's, each still in it (one moved away since is not).
    public func holds(_ parameters: [Parameter]) -> Bool {
        parameters.count == self.parameters.count && zip(parameters, self.parameters).allSatisfy { $0 === $1 }
            && parameters.indices.allSatisfy { parameters[$0].lives(in: valueViews[$0], gradViews[$0]) }
    }

    /// `slots` zero-filled flat buffers of this layout and each parameter's views into them: an optimiser's state.
    func stateArena(slots: Int) throws -> (flats: [Tensor], views: [[Tensor]]) {
        let arenas = try (0..<slots).map { _ in
            try Tensor.arena(parameters.map(\.value.shape), on: device, alignment: alignment)
        }
        return (arenas.map(\.flat), parameters.indices.map { i in arenas.map { $0.views[i] } })
    }

    /// Parameters `run` (consecutive, in layout order) in `flat` — `values`, `grads` or a `stateArena` flat — as one
    /// tensor over that stretch of it (with the gaps between them, which stay zero): a step of those parameters in
    /// one launch.
    func region(of run: Range<Int>, in flat: Tensor) throws -> Tensor {
        let start = offsets[run.lowerBound]
        let end = offsets[run.upperBound - 1] + parameters[run.upperBound - 1].value.count
        return try flat.region(offset: start, count: end - start)
    }

    /// Whether parameters `run` hold no element between them (a region of them would be empty).
    func isEmpty(_ run: Range<Int>) -> Bool { run.allSatisfy { parameters[$0].value.count == 0 } }

    /// Makes every pending lazy zero gradient real, so `grads` holds the gradients (each now counts as computed).
    public func materialiseGradients() throws {
        for p in parameters { try p.materialiseGrad() }
    }

    /// The block of `parameters` when they are exactly one block's (then one launch steps them all), else nil.
    static func of(_ parameters: [Parameter]) -> ParameterBlock? {
        guard let block = parameters.first?.block, block.holds(parameters) else { return nil }
        return block
    }
}
