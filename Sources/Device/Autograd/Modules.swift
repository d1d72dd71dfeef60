// What modules (Sources/NN) use of the tape: the tensors a hand-written backward keeps, and a module's output
// recorded as one op whose rule is the module's own backward.

/// A tensor a module keeps from its forward for its hand-written backward, with its storage's version then:
/// `checked` refuses it once it was modified in place (as `backward()` refuses a tape op's saved tensor). Kept
/// detached (the same elements, no gradient history): a module's input may be an output recorded with a rule that
/// holds the module (`recordedAsModule`), its own in `m(m(x))`, and keeping it would make a cycle.
package struct SavedTensor {
    package let tensor: Tensor
    private let version: SavedVersion

    package init(_ tensor: Tensor) { (self.tensor, version) = (tensor.detached(), SavedVersion(tensor)) }

    /// The tensor, or an error naming `op` and `what` the tensor is to it when it changed since it was saved.
    package func checked(_ op: String, _ what: String = "its input") throws -> Tensor {
        try version.check(op, what)
        return tensor
    }
}

/// A tensor's version when a module's forward read it, for a backward that reads it again (a layer's weight, which
/// an optimiser's step between the two changes; a `SavedTensor`'s): `check` refuses it once it was modified in place.
/// Keeps the version, not the tensor.
package struct SavedVersion {
    private let version: VersionCounter
    private let at: Int, shape: [Int]

    package init(_ tensor: Tensor) { (version, at, shape) = (tensor.version, tensor.version.value, tensor.shape) }

    /// Throws, naming `op` and `what` the tensor is to it, when it changed since.
    package func check(_ op: String, _ what: String) throws {
        guard version.value == at else {
            throw DeviceError.invalidArgument(op: op, "\(what) was modified in place after forward used it (a tensor "
                + "of shape \(shape), version \(at), now \(version.value)); run forward again after the change, or "
                + "change a copy")
        }
    }
}

extension Tensor {
    /// A module's output as one op on the tape, named `op`: a new tensor over this one's elements whose gradient goes
    /// to the module's own backward — `backward(dy, needsInputGradient)`, which adds the gradients of the module's
    /// parameters to theirs and returns the input's (nil: none, as PyTorch's None). Recorded from `input` when it
    /// requires a gradient; a module with parameters that take a gradient (`updatesParameters`) is recorded even
    /// when it does not, as PyTorch's parameters require one. `check` is what that backward would refuse, run by
    /// `backward()` before it changes anything. Both should go back through the forward that made this output, its
    /// state captured with them (or refuse an output whose forward a later one replaced). Self when recording is
    /// off, or when neither applies and the forward's own ops lead to a leaf that takes a gradient (as PyTorch's
    /// graph, with no node of the module's: a loop of such outputs goes back in one pass, not nested); else, with
    /// nothing to differentiate, the same elements with no history (`requiresGrad` false, as PyTorch's). The rule
    /// holds the module and that state (as PyTorch's graph holds what its backward needs); neither may hold the
    /// input as recorded (keep a `SavedTensor`, or a detached one), or in `m(m(x))` the rule would keep itself alive.
    package func recordedAsModule(_ op: String, input: Tensor?, updatesParameters: Bool,
                                  check: @escaping () throws -> Void,
                                  backward: @escaping (Tensor, Bool) throws -> Tensor?) -> Tensor {
        recordedAsModule(op, input: input, updatesParameters: updatesParameters, replaysTape: false, check: check) {
            g, needsInput, _ in (try backward(g, needsInput), [])
        }
    }

    /// The same for a module whose backward replays this tensor's tape (`replaysTape`, a `TapeModule`'s): it gives
    /// gradients of its own wherever that tape leads to a leaf that takes one, so it runs even when the input needs
    /// none; and the tensors with a history that the forward read (`capturedHistories(since:)`, asked for only when
    /// a node is made) are the node's inputs too — `backward(dy, needsInput, needsCaptured)` returns their gradients
    /// beside the input's, and `backward()` carries on from them in its own pass (a loop of modules reading the last
    /// one's output, and a tensor read by the module and by the loss, go back once each, not through nested
    /// backwards).
    package func recordedAsModule(_ op: String, input: Tensor?, updatesParameters: Bool, replaysTape: Bool,
                                  captured: @autoclosure () -> [Tensor] = [], check: @escaping () throws -> Void,
                                  backward: @escaping (Tensor, Bool, [Bool]) throws -> (Tensor?, [Tensor?]))
        -> Tensor {
        let tracked = input.flatMap { $0.requiresGrad ? $0 : nil }
        guard Tensor.recording else { return self }
        // Nothing for the module's backward to do: the output is what the forward's ops recorded when they lead to a
        // leaf that takes a gradient (a tensor the module captured, a weight it borrowed: PyTorch's graph), else it
        // takes no gradient, as PyTorch's (a tape the forward made on its copy of the input is not the caller's).
        guard tracked != nil || updatesParameters else {
            return reachesGradientLeaf || !requiresGrad ? self : detached()
        }
        let out = detached()
        let givesGradients = updatesParameters || replaysTape && reachesGradientLeaf
        let captured = replaysTape ? captured() : []
        let first = tracked == nil ? 0 : 1  // (where the captured tensors start among the node's inputs)
        out.autograd.node = TapeNode(op: op, inputs: (tracked.map { [$0] } ?? []) + captured, saved: [],
                                     module: (givesGradients, check)) { g, needs in
            // (A gradient may reach here as a view — a sum's is a broadcast — and modules take dense ones.)
            let (dx, capturedGradients) = try backward(g.isDense ? g : try g.contiguous(), tracked != nil && needs[0],
                                                       captured.indices.map { needs[first + $0] })
            return (tracked == nil ? [] : [dx]) + capturedGradients
        }
        return out
    }
}
