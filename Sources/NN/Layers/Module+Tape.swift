import Foundation

// A module's output on the tape: each forward's state kept with its output's tape node (built-in modules), or
// a module of your own recorded with its own backward and its calls counted.

extension Module {
    /// `forward(x)`: `model(x)`. A module of your own is recorded on the tape here as one op with its own
    /// `backward` (its `forward` runs as a container's children do, on `x` detached: kept by the module, the input as
    /// recorded would hold the module's tape node, which holds the module); a built-in module records itself in
    /// `forward`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard let own = OwnModuleCalls.of(self) else { return try forward(x) }
        own.forwards.next()
        return recordedWithOwnBackward(try ModuleTape.callerRunsBackward { try forward(x.detached()) }, from: x,
                                       calls: own)
    }

    /// `forward(rows)` as `callAsFunction` runs `forward(x)`.
    func callAsFunction(_ rows: Rows) throws -> Tensor {
        guard let own = OwnModuleCalls.of(self) else { return try forward(rows) }
        own.forwards.next()
        return recordedWithOwnBackward(try ModuleTape.callerRunsBackward { try forward(rows) }, from: nil, calls: own)
    }

    /// `forward(x)` for a caller that runs the backward itself (a `Sequential`'s children for its `backward`): a
    /// module of your own's forward is counted, so that a backward through an earlier one is refused.
    func countedForward(_ x: Tensor) throws -> Tensor {
        OwnModuleCalls.of(self)?.forwards.next()
        return try forward(x)
    }

    /// `forward(rows)` as `countedForward(x)` runs `forward(x)`.
    func countedForward(_ rows: Rows) throws -> Tensor {
        OwnModuleCalls.of(self)?.forwards.next()
        return try forward(rows)
    }

    /// `backward` for a container running its children's (a `Sequential`'s): a module of your own's is counted, so
    /// that the tape does not go back through the same forward again.
    func countedBackward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        OwnModuleCalls.of(self)?.backwards.next()
        return try backward(dy, needsInputGradient: needsInputGradient)
    }

    /// A module of your own's output, going back through its `backward`, which reads its last forward's state: once
    /// (by the tape or a `Sequential`'s backward, counted in `calls`), and only while no later forward (counted where
    /// CLNN calls it) replaced that state — a module of your own keeps one forward's, so a siamese `f(m(a), m(b))`
    /// or an output from before a later forward is refused, not given another forward's gradients.
    private func recordedWithOwnBackward(_ y: Tensor, from x: Tensor?, calls: OwnModuleCalls) -> Tensor {
        let (forwardsAt, backwardsAt) = (calls.forwards.value, calls.backwards.value)
        return onTape(y, from: x, check: {
            guard calls.forwards.value == forwardsAt else {
                throw DeviceError.invalidArgument(op: "\(Self.self).backward", "this module ran another forward "
                    + "since the one that made this output, and its backward reads its last forward's state: a "
                    + "module of your own goes back through its last forward only (write it as a TapeModule to go "
                    + "back through each, or give each use an instance of its own)")
            }
            guard calls.backwards.value == backwardsAt else {
                throw DeviceError.invalidArgument(op: "\(Self.self).backward", "went back through the forward that "
                    + "made this output already (the tape, or its Sequential's backward): a module of your own goes "
                    + "back through its last forward once, so keepGraph does not reach into it (forward again)")
            }
            try self.checkBackward()
        }, backward: { dy, needsInputGradient in
            calls.backwards.next()
            return try self.backward(dy, needsInputGradient: needsInputGradient)
        })
    }

    /// `y`, this module's forward output from `x` (nil: a dataset's rows, which take no gradient), as one op on the
    /// tape whose rule is `backward` — unless the caller runs the backward itself (a `Sequential` running its
    /// children for its own `backward`, the trainer). A built-in module's `backward` and `check` go through the
    /// state of the forward that made `y`, kept with them (so each output goes back through its own forward, as
    /// often as `keepGraph` allows); `check` is what `backward` would refuse.
    func onTape(_ y: Tensor, from x: Tensor?, check: @escaping () throws -> Void,
                backward: @escaping (_ dy: Tensor, _ needsInputGradient: Bool) throws -> Tensor?) -> Tensor {
        guard !ModuleTape.backwardByCaller else { return y }
        return y.recordedAsModule("\(Self.self)", input: x, updatesParameters: parameters.contains { !$0.isFrozen },
                                  check: check, backward: backward)
    }

    /// The same for a `TapeModule`, whose backward replays `y`'s tape: up to `captured`
    /// (`y.capturedHistories(since:)`), whose gradients it returns beside the input's
    /// (`Tensor.recordedAsModule(…replaysTape:…)`).
    func onTape(_ y: Tensor, from x: Tensor?, captured: @autoclosure () -> [Tensor],
                check: @escaping ([Tensor]) throws -> Void,
                backward: @escaping (_ dy: Tensor, _ needsInputGradient: Bool, _ captured: [Tensor],
                                     _ capturedNeeds: [Bool]) throws -> (Tensor?, [Tensor?])) -> Tensor {
        guard !ModuleTape.backwardByCaller else { return y }
        // (Found once, when a node is made: the check and the backward stop at the same tensors.)
        var stops: [Tensor] = []
        return y.recordedAsModule("\(Self.self)", input: x, updatesParameters: parameters.contains { !$0.isFrozen },
                                  replaysTape: true, captured: { stops = captured(); return stops }(),
                                  check: { try check(stops) }, backward: { try backward($0, $1, stops, $2) })
    }
}

/// A count of calls: a module's forwards (`Sequential.checkBackward`: a child that ran another since the model's), a
/// module of your own's forwards and backwards (`OwnModuleCalls`).
final class CallCount {
    private(set) var value = 0
    func next() { value += 1 }

    /// The forwards a module has run: a built-in module's own count (a `TapeModule`'s is in its `tape`), or the one
    /// CLNN keeps for a module of your own (`OwnModuleCalls`).
    static func forwards(of module: any Module) -> CallCount {
        builtIn(module) ?? OwnModuleCalls.table.calls(of: module).forwards
    }

    /// A built-in module's own forward count; nil for a module of your own.
    fileprivate static func builtIn(_ module: any Module) -> CallCount? {
        if let taped = module as? any TapeModule { return taped.tape.forwards }
        return (module as? any CountsForwards)?.forwards
    }
}

/// What CLNN counts of a module of your own, which keeps one forward's state and counts nothing itself: its forwards
/// and backwards where CLNN calls them (`m(x)`, a `Sequential`'s children, its output's tape node). A forward or
/// backward you call yourself is not seen. (A built-in module counts its forwards and keeps each one's state.)
final class OwnModuleCalls {
    let forwards = CallCount(), backwards = CallCount()

    /// The counts of `module`; nil for a built-in module.
    static func of(_ module: any Module) -> OwnModuleCalls? {
        CallCount.builtIn(module) == nil ? table.calls(of: module) : nil
    }

    fileprivate static let table = Table()

    /// The counts by object, each while its module lives. (Modules of different tasks may run at once: the table is
    /// locked; each entry is its module's, used by the task that holds the module.)
    fileprivate final class Table: @unchecked Sendable {
        private let lock = NSLock()
        private struct Entry {
            weak var module: AnyObject?
            let calls: OwnModuleCalls
        }
        private var entries: [ObjectIdentifier: Entry] = [:]
        private var pruneAt = 64

        func calls(of module: AnyObject) -> OwnModuleCalls {
            lock.lock()
            defer { lock.unlock() }
            let id = ObjectIdentifier(module)
            if let entry = entries[id], entry.module === module { return entry.calls }
            if entries.count >= pruneAt {  // (the entries of modules that are gone)
                entries = entries.filter { $0.value.module != nil }
                pruneAt = Swift.max(64, 2 * entries.count)
            }
            let calls = OwnModuleCalls()
            entries[id] = Entry(module: module, calls: calls)
            return calls
        }
    }
}

/// A module whose backward refuses more when it is asked for its input's gradient (`Linear`: the weight it then
/// reads may not have changed since the forward): a container checks it with what it will ask.
protocol ChecksBackwardByNeed: Module {
    func checkBackward(needsInputGradient: Bool) throws
}

/// A built-in module with a hand-written backward, which counts its forwards.
protocol CountsForwards: Module {
    var forwards: CallCount { get }
}

/// What one forward of a built-in module with a hand-written backward keeps for it, shared by the output's tape node
/// and the module's hand-called `backward` (which reads its last forward's): either may go back through it, not both
/// — the other would add the same gradients again. A hand-called backward goes once and the module forgets the
/// forward; the tape goes as often as `keepGraph` allows, and the module forgets the forward too.
final class ForwardState<Saved> {
    let saved: Saved
    /// A hand-called backward went back through this forward.
    var wentBackByHand = false
    init(_ saved: Saved) { self.saved = saved }

    /// For the tape node's check: refuses a forward a hand-called backward went back through.
    func checkTape(_ op: String) throws {
        guard !wentBackByHand else {
            throw DeviceError.invalidArgument(op: op, "a hand-called backward (module.backward(dy)) went back "
                + "through the forward that made this output already: forward again to go back through the tape")
        }
    }
}

/// Whether the forward in progress is one whose caller goes back through the modules' `backward` itself — the
/// trainer running its model, a custom module's forward called by `m(x)`: the module outputs it makes are not
/// recorded on the tape (`Module.onTape`). A `Sequential` sets it for its children when its own caller runs the
/// backward (else each child's output is recorded); a `TapeModule`'s `compute` clears it: its backward is the tape's,
/// through whatever modules it calls.
enum ModuleTape {
    @TaskLocal static var backwardByCaller = false

    /// `body`, a forward whose caller runs the backward itself (`true`), or one whose backward is the tape's.
    static func callerRunsBackward<R>(_ runs: Bool = true, _ body: () throws -> R) rethrows -> R {
        try $backwardByCaller.withValue(runs, operation: body)
    }
}
