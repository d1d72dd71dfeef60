/// Updates a model's parameters from their gradients. ``SGD`` and ``Adam`` follow PyTorch's update rules.
///
/// An optimiser owns per-parameter state (named as PyTorch names it: `momentum_buffer`, `exp_avg`, `exp_avg_sq`),
/// which a training checkpoint saves so that a resumed run continues exactly (see ``TrainingState``).
public protocol Optimizer: AnyObject {
    /// The parameters it updates, in a fixed order.
    var parameters: [Parameter] { get }
    /// The learning rate of the next step (a schedule sets it before each step).
    var lr: Float { get set }
    /// The name `--optimizer` and checkpoints use: `sgd` or `adam`.
    var name: String { get }
    /// The names of the state tensors each parameter carries (empty for plain SGD).
    var stateNames: [String] { get }
    /// Steps taken so far (Adam's bias correction depends on it).
    var stepCount: Int { get set }
    /// Updates every parameter in place, on its own device.
    func step() throws
}

extension Optimizer {
    /// Parameter `index`'s state tensors, in `stateNames` order, created (zero) when the optimiser has not stepped yet.
    func stateTensors(of index: Int) throws -> [Tensor] {
        let p = parameters[index]
        try p.ensureState(stateNames.count)
        return p.state
    }

    /// The optimiser's state of `parameter` by name (`exp_avg`, `exp_avg_sq`; `momentum_buffer`), zero before the
    /// first step. The tensors are the live state: writing them changes the next step.
    /// - Throws: `DeviceError.invalidArgument` when `parameter` is not one this optimiser updates.
    public func state(of parameter: Parameter) throws -> [String: Tensor] {
        guard let index = parameters.firstIndex(where: { $0 === parameter }) else {
            throw DeviceError.invalidArgument(op: name, "parameter '\(parameter.name)' is not one this optimizer updates")
        }
        return Dictionary(uniqueKeysWithValues: zip(stateNames, try stateTensors(of: index)))
    }
}

/// The flat buffers an optimiser steps in one launch: values, gradients and each state slot, one arena each, the
/// parameters becoming views into them (as llm.c does). Only when every parameter lives on one device.
final class ParameterArena {
    let values, grads: Tensor
    let states: [Tensor]
    private let views: [(value: Tensor, grad: Tensor, state: [Tensor])]

    /// Nil when the parameters do not share a device (the optimiser then steps each on its own). `alignment` (floats)
    /// fixes the layout across devices (see `Tensor.arena`).
    init?(_ parameters: [Parameter], stateSlots: Int, alignment: Int = 1) throws {
        guard let device = parameters.first?.device, parameters.allSatisfy({ $0.device == device }) else { return nil }
        let shapes = parameters.map(\.value.shape)
        let values = try Tensor.arena(shapes, on: device, alignment: alignment)
        let grads = try Tensor.arena(shapes, on: device, alignment: alignment)
        let states = try (0..<stateSlots).map { _ in try Tensor.arena(shapes, on: device, alignment: alignment) }
        var views: [(Tensor, Tensor, [Tensor])] = []
        for (i, p) in parameters.enumerated() {
            try p.ensureState(stateSlots)
            let state = states.map { $0.views[i] }
            try p.adopt(value: values.views[i], grad: grads.views[i], state: state)
            views.append((values.views[i], grads.views[i], state))
        }
        (self.values, self.grads, self.states, self.views) = (values.flat, grads.flat, states.map(\.flat), views)
    }

    /// Whether every parameter still lives in this arena (one moved with `to(_:)` does not).
    func holds(_ parameters: [Parameter]) -> Bool {
        parameters.count == views.count
            && zip(parameters, views).allSatisfy { $0.lives(in: $1.value, $1.grad, $1.state) }
    }
}

/// The arena an optimiser keeps, rebuilt when a parameter has moved since.
struct ArenaSlot {
    private var arena: ParameterArena?
    /// The views' alignment in floats (raised by a data-parallel trainer to the largest of its devices'); changing
    /// it rebuilds the arena at the next step.
    var alignment = 1 {
        didSet { if alignment != oldValue { arena = nil } }
    }

    /// The arena over `parameters` (nil when they do not share a device), with every pending zero gradient made real.
    mutating func current(_ parameters: [Parameter], stateSlots: Int) throws -> ParameterArena? {
        if arena == nil || !arena!.holds(parameters) {
            // NOTE: drop the old arena first, so its memory is free before the new one is made.
            arena = nil
            arena = try ParameterArena(parameters, stateSlots: stateSlots, alignment: alignment)
        }
        guard let arena else { return nil }
        for p in parameters { try p.materialiseGrad() }
        return arena
    }
}

/// An optimiser that keeps its parameters in flat buffers: a data-parallel trainer sums replicas' gradients into
/// them and copies the updated values out of them, one copy per replica.
protocol FlatOptimizer {
    /// The flat value and gradient buffers (pending zero gradients made real), or nil when the parameters do not share
    /// a device.
    func flatBuffers() throws -> ParameterArena?
    /// Lays the flat buffers out with views aligned to `floats` (rebuilt at the next step).
    func align(to floats: Int)
}
