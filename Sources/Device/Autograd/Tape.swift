import Foundation
import Synchronization

// The tape: a result of an op on tensors that need gradients remembers the op (a TapeNode: its inputs, the tensors
// its backward rule reads, and the rule itself). `backward()` walks the results in reverse topological order and
// hands each rule the gradient of its result. Each op's rule sits beside its forward (Ops/*.swift,
// Tensor/Tensor+Views.swift); this file only records and walks. As in PyTorch: gradients of leaves accumulate in
// `grad` until reset, a modified saved tensor is an error at `backward()` (a version counter per storage), and
// `withoutGradients` turns recording off.

/// Counts the in-place changes of one storage; shared by every view of it. (Unlocked: a tensor's contents are
/// changed by one task at a time, as its ops are.)
final class VersionCounter: @unchecked Sendable {
    @exclusivity(unchecked) private(set) var value = 0
    func bump() { value += 1 }
}

/// One recorded op: how to turn its result's gradient into its inputs' gradients.
final class TapeNode {
    let op: String
    /// The op's operands, in the order its rule returns their gradients.
    @exclusivity(unchecked) private(set) var inputs: [Tensor]
    /// The storages of the tensors the rule reads, with their versions when recorded and the tensors' shapes (for
    /// the error). Not the tensors: a rule may read the op's own result, which must not keep itself alive.
    let saved: SavedVersions
    /// The rule: the result's gradient and which inputs need one → one gradient per input (nil: none), each of the
    /// input's shape. Dropped after `backward()` unless the graph is kept.
    @exclusivity(unchecked) var rule: ((Tensor, GradientNeeds) throws -> [Tensor?])?
    /// A module's output (`recordedAsModule`): the rule adds gradients to the module's parameters itself, so it runs
    /// even when no input needs a gradient; `check` is what it would refuse, run before `backward()` changes anything.
    let module: (updatesParameters: Bool, check: () throws -> Void)?
    /// Whether the result leads to a leaf that took a gradient when the op was recorded (`Tensor.reachesGradientLeaf`).
    let reachesGradientLeaf: Bool
    /// The inputs (of the first 64) that took no gradient when the op was recorded, a bit each: no gradient goes back
    /// to them through this op, even when they take one by `backward()` (PyTorch's graph has no edge there).
    private let untracked: UInt64
    /// When the op was recorded, in the order of every node's recording (`Tensor.tapeClock`).
    let recordedAt = TapeClock.ticks.wrappingAdd(1, ordering: .relaxed).oldValue

    init(op: String, inputs: [Tensor], saved: [Tensor],
         module: (updatesParameters: Bool, check: () throws -> Void)? = nil,
         rule: @escaping (Tensor, GradientNeeds) throws -> [Tensor?]) {
        (self.op, self.inputs, self.rule, self.module) = (op, inputs, rule, module)
        self.saved = SavedVersions(saved)
        var (reaches, untracked) = (module?.updatesParameters == true, UInt64(0))
        for (i, input) in inputs.enumerated() {
            if !input.requiresGrad {
                if i < 64 { untracked |= 1 << UInt64(i) }
            } else if !reaches {
                reaches = input.reachesGradientLeaf
            }
        }
        (reachesGradientLeaf, self.untracked) = (reaches, untracked)
    }

    /// Whether input i took a gradient when the op was recorded: whether gradients go back to it through this op.
    func tracks(_ i: Int) -> Bool { i >= 64 || untracked & (1 << UInt64(i)) == 0 }

    // NOTE: without this, freeing the last result of a long chain of ops frees each node from the previous one's
    // deinit, recursively, and overflows the stack (20 000 ops are enough). Instead, the nodes only this one holds
    // are taken apart here, one at a time.
    deinit {
        var pending = inputs
        inputs = []
        while var tensor = pending.popLast() {
            guard isKnownUniquelyReferenced(&tensor), var node = tensor.autograd.node else { continue }
            tensor.autograd.node = nil
            if isKnownUniquelyReferenced(&node) {
                pending += node.inputs
                node.inputs = []
            }
        }
    }
}

/// Counts the nodes recorded, process-wide (`TapeNode.recordedAt`).
enum TapeClock {
    static let ticks = Atomic<UInt64>(0)
}

/// The versions of the tensors an op's rule reads, when it was recorded: up to three kept in the node itself (every
/// elementwise op's case; recording is per op, and a chain of small ops is host-bound), more in an array.
struct SavedVersions {
    typealias Entry = (version: VersionCounter, at: Int, shape: [Int])
    private let first: Entry?, second: Entry?, third: Entry?
    private let rest: [Entry]

    init(_ tensors: [Tensor]) {
        func entry(_ i: Int) -> Entry? {
            i < tensors.count ? (tensors[i].version, tensors[i].version.value, tensors[i].shape) : nil
        }
        (first, second, third) = (entry(0), entry(1), entry(2))
        rest = tensors.count > 3 ? tensors[3...].map { ($0.version, $0.version.value, $0.shape) } : []
    }

    /// The first entry whose storage changed since, if any.
    var firstModified: Entry? {
        for entry in [first, second, third] { if let entry, entry.version.value != entry.at { return entry } }
        return rest.first { $0.version.value != $0.at }
    }
}

/// A tensor's gradient bookkeeping.
struct AutogradState {
    /// Set by the user on a leaf (`requiresGrad = true`).
    var wantsGradient = false
    /// The op that made this tensor, when it was recorded.
    var node: TapeNode?
    /// The accumulated gradient of a leaf.
    var grad: Tensor?
    /// Where a leaf's gradient goes instead of `grad`, when set (a module's parameter gradient buffer).
    var destination: GradientDestination?
    /// A module's copy of its input (`moduleInput()`): only that module's backward gives it a gradient.
    var isModuleInput = false
}

/// A buffer of a leaf's own that its gradients are written into (first write) or added to (`accumulate`), instead of
/// its `grad`: a module's parameter gradient. `next()` says which, and counts as a write.
package struct GradientDestination {
    package let next: () -> (tensor: Tensor, accumulate: Bool)
    package init(_ next: @escaping () -> (tensor: Tensor, accumulate: Bool)) { self.next = next }

    /// Writes or adds `g`.
    func deliver(_ g: Tensor) throws {
        let (target, accumulate) = next()
        if accumulate { try target.elementwise(.add, g, into: target) } else { try target.copy(from: g) }
    }
}

/// What a backward rule is told about its op's inputs: which need a gradient (`needs[i]`), and where an input's
/// gradient may be written directly (a leaf with a `GradientDestination`), so that a product writes a parameter's
/// gradient into its buffer instead of into a new tensor that is then copied there.
struct GradientNeeds {
    let node: TapeNode
    var inputs: [Tensor] { node.inputs }
    /// The tensors of this backward pass that lead to a leaf wanting a gradient.
    let needed: Set<ObjectIdentifier>

    subscript(i: Int) -> Bool { node.tracks(i) && needed.contains(ObjectIdentifier(inputs[i])) }

    /// Input i's destination (a dense tensor of its shape, and whether to add to it), when it has one: the rule
    /// writes the gradient there and returns nil for it. Asking counts as a write (ask only to write).
    func destination(_ i: Int) -> (tensor: Tensor, accumulate: Bool)? {
        let input = inputs[i]
        guard input.autograd.node == nil, let destination = input.autograd.destination else { return nil }
        return destination.next()
    }
}

extension Tensor {
    /// Whether gradients flow to this tensor: set it on a leaf (a parameter, an input) to have `backward()` fill its
    /// `grad`; a result of ops on such tensors requires it too. Setting it to false on a result detaches it from the
    /// tape.
    public var requiresGrad: Bool {
        get { autograd.wantsGradient || autograd.node != nil }
        set {
            autograd.wantsGradient = newValue
            autograd.isModuleInput = false  // (the user's leaf now)
            if !newValue { autograd.node = nil }
        }
    }

    /// The gradient `backward()` accumulated into this leaf (same shape, same device), or nil before any. Set it to
    /// nil to start again (as PyTorch's `zero_grad(set_to_none=True)`).
    public var grad: Tensor? {
        get { autograd.grad }
        set { autograd.grad = newValue }
    }

    /// Sends this leaf's gradients to `destination` instead of accumulating them in `grad` (nil: back to `grad`): how
    /// a module adds its parameters' gradients straight into its own gradient buffers.
    package func sendGradients(to destination: GradientDestination?) { autograd.destination = destination }

    /// Whether this leaf's gradients go to a destination of its own (it is a parameter's value).
    package var sendsGradientsElsewhere: Bool { autograd.destination != nil }

    /// Whether this tensor was made by the user rather than recorded from an op.
    public var isLeaf: Bool { autograd.node == nil }

    /// The same values (a view of the same storage) with no gradient history.
    public func detached() -> Tensor { Tensor(view: layout, of: self) }

    @TaskLocal static var recording = true

    /// Held while a `backward()` adds to a leaf's gradient (its `grad`, or a parameter's buffer).
    static let leafGradients = NSLock()

    /// Runs `body` without recording any op for gradients (evaluation, optimiser updates).
    public static func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
        try $recording.withValue(false) { try body() }
    }

    /// Whether ops are recorded for gradients here (false inside `withoutGradients`).
    public static var isRecordingGradients: Bool { recording }

    @TaskLocal static var keepingGraph = false

    /// Whether the `backward()` running now keeps its graph (`keepGraph`): a module's rule that runs a tape of its
    /// own (a `TapeModule`'s forward) keeps that one too.
    package static var isKeepingGraph: Bool { keepingGraph }

    /// Records that this tensor is `op` of `inputs`, when recording is on and an input requires a gradient; `rule`
    /// gets this tensor's gradient and returns one gradient per input. `saved` are the tensors `rule` reads (checked
    /// at `backward()` not to have changed). Returns self.
    @discardableResult
    package func recorded(_ op: String, from inputs: [Tensor], saving saved: [Tensor] = [],
                          _ rule: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
        recorded(op, from: inputs, saving: saved) { g, _ in try rule(g) }
    }

    /// The same with a rule that is told which inputs need a gradient (`needs[i]`), so that it can skip the work
    /// for the others (the matrix product's second GEMM).
    @discardableResult
    func recorded(_ op: String, from inputs: [Tensor], saving saved: [Tensor] = [],
                  _ rule: @escaping (Tensor, _ needs: GradientNeeds) throws -> [Tensor?]) -> Tensor {
        guard inputs.contains(where: \.requiresGrad), Tensor.recording else { return self }
        return record(op, from: inputs, saving: saved, rule)
    }

    /// `recorded` for an op that has checked itself that recording is on and an input requires a gradient (the
    /// elementwise ops, where an op off the tape must cost nothing more and one on it as little as can be).
    func record(_ op: String, from inputs: [Tensor], saving saved: [Tensor],
                _ rule: @escaping (Tensor, _ needs: GradientNeeds) throws -> [Tensor?]) -> Tensor {
        autograd.node = TapeNode(op: op, inputs: inputs, saved: saved, rule: rule)
        return self
    }

    /// Computes the gradient of this tensor with respect to every leaf it depends on that `requiresGrad`, and adds
    /// it to the leaf's `grad`. A scalar (one element) needs no `seed`; otherwise `seed` is the gradient of some
    /// scalar with respect to this tensor (same shape). The graph's saved tensors are released afterwards unless
    /// `keepGraph`.
    /// - Throws: `DeviceError.invalidArgument` when this tensor needs no gradient, when a non-scalar has no seed or
    ///   a seed of another shape, when the graph was already released, or when a tensor an op saved was modified in
    ///   place after it was recorded (naming the op).
    public func backward(seed: Tensor? = nil, keepGraph: Bool = false) throws {
        _ = try backward(seed: seed, keepGraph: keepGraph, moduleInput: nil)
    }

    /// A module's backward through the tape of its own forward (a `TapeModule`'s): `backward(seed:keepGraph:)` that
    /// also gives `input`, the module's copy of its input (`moduleInput()`), its gradient (nil: none is asked for),
    /// and does nothing when this tensor takes no gradient (every parameter frozen, nothing asked). It goes no
    /// further than `stops` (`capturedHistories(since:)`: tensors the module's forward read that were computed before
    /// it): their gradients are returned (nil where none reached them or `stopsNeed` says none is needed), for the
    /// caller's `backward()` to carry on from — one pass over a loop of such modules, where going on from here would
    /// nest a backward per module.
    package func backward(seed: Tensor, keepGraph: Bool, toModuleInput input: Tensor?, stoppingAt stops: [Tensor],
                          stopsNeed: [Bool]) throws -> [Tensor?] {
        guard requiresGrad else { return stops.map { _ in nil } }
        return try backward(seed: seed, keepGraph: keepGraph, moduleInput: input,
                            stops: zip(stops, stopsNeed).map { ($0, $1) })
    }

    /// Where the tape is now: nodes recorded from here on have `recordedAt` at least this (`capturedHistories`).
    package static var tapeClock: UInt64 { TapeClock.ticks.load(ordering: .relaxed) }

    /// The tensors with a recorded history of their own, made before `start` (a module's forward began:
    /// `tapeClock`), that the ops recorded since and leading to this one read — a state a recurrent `TapeModule`
    /// keeps, a tensor computed before its forward — once each, where they lead to a leaf that takes a gradient:
    /// where that module's node hands its backward on (`backward(…stoppingAt:)`). Only the ops recorded since `start`
    /// are walked. Empty when this tensor was recorded before.
    package func capturedHistories(since start: UInt64) -> [Tensor] {
        guard let last = autograd.node, last.recordedAt >= start else { return [] }
        var found: [Tensor] = []
        var seen: Set<ObjectIdentifier> = [ObjectIdentifier(self)]
        var pending = [self]
        while let t = pending.popLast() {
            for input in t.autograd.node?.inputs ?? [] where seen.insert(ObjectIdentifier(input)).inserted {
                guard let node = input.autograd.node else { continue }
                if node.recordedAt >= start {
                    pending.append(input)
                } else if node.reachesGradientLeaf {
                    found.append(input)
                }
            }
        }
        return found
    }

    /// A leaf over this tensor's elements for a module that records its forward on a tape of its own (a
    /// `TapeModule`): the ops on it are recorded, but only that module's backward gives it a gradient
    /// (`backward(seed:keepGraph:toModuleInput:stoppingAt:stopsNeed:)`). A `backward()` that reaches it otherwise —
    /// through the output of a module whose input takes no gradient — computes nothing for it (a first convolution's
    /// input gradient; PyTorch's graph never reaches there).
    package func moduleInput() -> Tensor {
        let input = detached()
        (input.autograd.wantsGradient, input.autograd.isModuleInput) = (true, true)
        return input
    }

    /// Whether `backward()` from here gives a gradient to anything but a module's copy of its input — a leaf that
    /// took one when the ops were recorded (a parameter that trains, a tensor with `requiresGrad` set), or a
    /// module's output whose own backward gives gradients: PyTorch's `requires_grad`, which a module's output
    /// follows (`recordedAsModule`). Known when each op is recorded (`TapeNode`), at no cost here.
    package var reachesGradientLeaf: Bool {
        autograd.node?.reachesGradientLeaf ?? (autograd.wantsGradient && !autograd.isModuleInput)
    }

    /// `stops`: tensors whose gradient is returned instead of being carried on (with whether it is needed).
    private func backward(seed: Tensor?, keepGraph: Bool, moduleInput: Tensor?,
                          stops: [(tensor: Tensor, needed: Bool)] = []) throws -> [Tensor?] {
        guard requiresGrad else {
            throw DeviceError.invalidArgument(op: "backward", "the tensor of shape \(shape) needs no gradient: "
                + "nothing it was computed from has requiresGrad set (or it was computed inside withoutGradients)")
        }
        let seed = try seed ?? {
            guard count == 1 else {
                throw DeviceError.invalidArgument(op: "backward", "the tensor of shape \(shape) is not a scalar: "
                    + "pass backward(seed:) a gradient of shape \(shape)")
            }
            return try Tensor.full(shape, value: 1, on: device)
        }()
        guard seed.shape == shape else {
            throw DeviceError.invalidArgument(op: "backward", "the seed's shape \(seed.shape) is not the tensor's "
                + "\(shape)")
        }
        guard seed.device == device else {
            throw DeviceError.invalidArgument(op: "backward", "the seed is on \(seed.device) but the tensor on "
                + "\(device): pass seed.to(\(device))")
        }
        let stopAt = Set(stops.map { ObjectIdentifier($0.tensor) })
        let order = topologicalOrder(stoppingAt: stopAt)
        try Tensor.check(order, skipping: stopAt)
        // Which tensors lead to a leaf that takes a gradient (inputs come before results in `order`): a rule computes
        // no gradient for the others — a module's copy of its input outside that module's backward (a network's
        // first convolution), an input whose `requiresGrad` was turned off after recording — at no backward work.
        var needed = Set(stops.filter(\.needed).map { ObjectIdentifier($0.tensor) })
        for t in order where stopAt.isEmpty || !stopAt.contains(ObjectIdentifier(t)) {
            let wanted = t.autograd.node.map { node in
                let needs = GradientNeeds(node: node, needed: needed)
                return node.module?.updatesParameters == true || node.inputs.indices.contains { needs[$0] }
            } ?? (t.autograd.isModuleInput ? t === moduleInput
                    : t.autograd.wantsGradient || t.autograd.destination != nil)
            if wanted { needed.insert(ObjectIdentifier(t)) }
        }
        return try Tensor.$keepingGraph.withValue(keepGraph) { try Tensor.withoutGradients {
            var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
            var stopped: [ObjectIdentifier: Tensor] = [:]
            for t in order.reversed() {
                guard var g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                if !stopAt.isEmpty && stopAt.contains(ObjectIdentifier(t)) {  // (the caller carries on from here)
                    stopped[ObjectIdentifier(t)] = g
                    continue
                }
                guard needed.contains(ObjectIdentifier(t)) else {
                    if !keepGraph { t.autograd.node?.rule = nil }
                    continue
                }
                guard let node = t.autograd.node else {
                    // A leaf's gradient is its own dense tensor (g may be shared with another input, or a view).
                    // A fresh dense gradient that nothing else holds (a rule's new result) is kept as it is.
                    let alone = isKnownUniquelyReferenced(&g) && g.isDense && g.ownsStorageAlone()
                    // (One backward at a time adds to a leaf: tasks may share one, and an add lost — or a gradient
                    // swapped out under another task — was a wrong sum or a crash: helper-30.)
                    try Tensor.leafGradients.withLock {
                        if let destination = t.autograd.destination {
                            try destination.deliver(g)
                        } else if t.autograd.wantsGradient {
                            t.autograd.grad = try t.autograd.grad.map { try $0 + g } ?? (alone ? g : g.cloned())
                        }
                    }
                    continue
                }
                guard let rule = node.rule else {
                    throw DeviceError.invalidArgument(op: "backward", "the graph through \(node.op) was released "
                        + "by an earlier backward(); pass keepGraph: true to the first call to go through it twice")
                }
                let needs = GradientNeeds(node: node, needed: needed)
                for (i, (input, gi)) in zip(node.inputs, try rule(g, needs)).enumerated() where needs[i] {
                    guard let gi else { continue }
                    let key = ObjectIdentifier(input)
                    grads[key] = try grads[key].map { try $0 + gi } ?? gi
                }
                if !keepGraph { node.rule = nil }
            }
            return stops.map { stopped[ObjectIdentifier($0.tensor)] }
        } }
    }

    /// Every tensor this one was computed from through recorded ops (itself included), inputs before results.
    private func topologicalOrder(stoppingAt stops: Set<ObjectIdentifier> = []) -> [Tensor] {
        var order: [Tensor] = []
        var seen: Set<ObjectIdentifier> = [ObjectIdentifier(self)]
        // Iterative depth-first search: a long chain of ops must not overflow the stack.
        var stack: [(tensor: Tensor, next: Int)] = [(self, 0)]
        while let (tensor, next) = stack.last {
            let node = !stops.isEmpty && stops.contains(ObjectIdentifier(tensor)) ? nil : tensor.autograd.node
            if let node, next < node.inputs.count {
                stack[stack.count - 1].next += 1
                let input = node.inputs[next]
                if node.tracks(next), input.requiresGrad, seen.insert(ObjectIdentifier(input)).inserted {
                    stack.append((input, 0))
                }
            } else {
                order.append(tensor)
                stack.removeLast()
            }
        }
        return order
    }

    /// What `backward()` from this tensor would refuse, found before it changes anything: a tensor an op saved
    /// that was modified in place since, a leaf's `grad` set to one that cannot take its gradient. (A module's
    /// backward checks it for every child first, so that a refused one changes no gradient.)
    package func checkRecordedGraph() throws { try Tensor.check(topologicalOrder()) }

    /// The same up to `stops` (not checked: the caller's `backward()` checks them and what they were computed from).
    package func checkRecordedGraph(stoppingAt stops: [Tensor]) throws {
        let stopAt = Set(stops.map(ObjectIdentifier.init))
        try Tensor.check(topologicalOrder(stoppingAt: stopAt), skipping: stopAt)
    }

    private static func check(_ order: [Tensor], skipping skipped: Set<ObjectIdentifier> = []) throws {
        for t in order where skipped.isEmpty || !skipped.contains(ObjectIdentifier(t)) {
            try t.autograd.node.map(Tensor.checkSaved)
            try t.autograd.node?.module?.check()
            // (A leaf's under the lock: another task's backward may be adding to it.)
            let grad = t.autograd.node == nil ? Tensor.leafGradients.withLock { t.autograd.grad } : t.autograd.grad
            if let held = grad, held.shape != t.shape || held.device != t.device {
                throw DeviceError.invalidArgument(op: "backward", "the grad of a tensor of shape \(t.shape) on "
                    + "\(t.device) was set to one of shape \(held.shape) on \(held.device): its gradient cannot be "
                    + "added to it (set grad to nil, or to a tensor like it)")
            }
        }
    }

    private static func checkSaved(_ node: TapeNode) throws {
        if let (counter, version, shape) = node.saved.firstModified {
            throw DeviceError.invalidArgument(op: "backward", "a tensor of shape \(shape) that \(node.op) "
                + "saved for its gradient was modified in place after \(node.op) used it (version \(version), now "
                + "\(counter.value)); compute it again, or modify a copy")
        }
    }
}
