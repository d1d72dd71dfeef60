@_spi(CLI) import Device
import Foundation

/// Where a training run stands: `epoch` epochs completed and `step` steps taken into the next one (0 at an epoch's
/// end), with the sum of those steps' losses (so the epoch's mean loss comes out as in a run never stopped).
public struct RunPosition: Sendable, Equatable {
    /// Epochs completed.
    public var epoch: Int
    /// Steps taken into epoch `epoch + 1`.
    public var step: Int
    /// The sum of those steps' mean losses.
    public var lossSum: Double

    /// At the end of epoch `epoch` (`step` 0), or `step` steps into the next.
    public init(epoch: Int, step: Int = 0, lossSum: Double = 0) {
        self.epoch = epoch
        self.step = step
        self.lossSum = lossSum
    }
}

/// A training run on disk: the model checkpoint (a plain PyTorch state dict, `m.safetensors`) and the training
/// state that continues it (`m.state.safetensors`), written and read as one.
///
/// The checkpoint records the digest of its state file and the state the digest of the weights it was saved with,
/// so a state from another run, or from another save of this one, is refused. A save writes the state first under a
/// staging name (`.m.state.safetensors.pending`), then replaces the checkpoint — that rename is the commit — and
/// then renames the state into place: a process killed at any instant leaves either the previous pair or the new
/// one (`load` finds the state the checkpoint names in either place). Both files sit beside the real checkpoint
/// file when `path` is a symbolic link.
public enum SavedRun {
    /// Non-zero while `whileSaving` runs (a signal handler reads it to hold off an exit until the save commits).
    nonisolated(unsafe) private static var savingNow: sig_atomic_t = 0

    /// Whether a save is being committed now (`whileSaving`). Async-signal-safe to read: a handler that would end the
    /// process can wait for the commit instead.
    public static var isSaving: Bool { savingNow != 0 }

    /// Runs `save` flagged as a save in progress (`isSaving`).
    public static func whileSaving<T>(_ save: () throws -> T) rethrows -> T {
        savingNow = 1
        defer { savingNow = 0 }
        return try save()
    }

    /// The files of a run saved at `path`.
    public struct Files: Sendable {
        /// The checkpoint's path as given.
        public let model: String
        /// The file written (symbolic links resolved).
        public let resolved: String
        /// The training state's file, beside `resolved`.
        public let state: String
        /// Where a save stages the new state before its commit.
        public let staged: String

        /// The files for a checkpoint at `path` (which need not exist yet).
        public init(_ path: String) throws {
            model = path
            resolved = try AtomicFile.resolve(path).resolved
            state = TrainingState.path(besides: resolved)
            let url = URL(fileURLWithPath: state)
            staged = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).pending").path
        }
    }

    /// Throws unless a run may be saved at `path`: a training state there (another checkpoint's
    /// `….state.safetensors`) would be replaced by a model, and that run could not be resumed; a model (or other
    /// safetensors file) where this save's state goes (`m.state.safetensors` saved as a model by another run) would
    /// be replaced by a training state.
    public static func checkTarget(_ path: String) throws {
        let files = try Files(path)
        if isTrainingState(files.resolved) {
            throw DataError(path, "is a training state (the file beside a checkpoint that resumes its run): saving a "
                + "model over it would lose that run's state; give another name")
        }
        if let metadata = try? SafeTensors.metadata(ofFileAt: files.state), metadata["clnn.state"] == nil {
            throw DataError(path, "its training state would replace \(files.state), which is not a training state "
                + "(a model saved under that name?); give another name")
        }
    }

    /// Whether the file at `path` is a training state (its header's metadata says so).
    static func isTrainingState(_ path: String) -> Bool {
        (try? SafeTensors.metadata(ofFileAt: path))?["clnn.state"] != nil
    }

    /// Saves `trainer`'s model with `checkpoint`'s metadata and its training state at `position` to `path` and
    /// beside it, as one commit (see `SavedRun`).
    /// - Throws: `DataError` with the previous pair intact: the metadata does not describe the model, a weight is
    ///   not finite, or a write fails.
    /// `stepsPerEpoch` is recorded with a position inside an epoch, so a resume on other data is refused.
    /// - Returns: a remark when the pair is committed but its state could not be moved into place (it stays staged,
    ///   where `load` finds it), else nil.
    @discardableResult
    public static func save(_ trainer: Trainer, checkpoint: Checkpoint, at position: RunPosition,
                            stepsPerEpoch: Int? = nil,
                            to path: String) throws -> String? {
        let files = try Files(path)
        try checkTarget(path)
        // NOTE: a save cut short after its commit left the committed state staged: put it in place before staging
        // another over it, or that pair would be lost should this save be cut short too.
        settle(files)
        let tensors = try checkpoint.tensors(of: trainer.model, path: path)
        let state = try TrainingState.encode(trainer, at: position, stepsPerEpoch: stepsPerEpoch,
                                             modelDigest: SafeTensors.digest(tensors))
        var bound = checkpoint
        bound.trainingStateDigest = fnv1a(state)
        let model = try bound.encode(tensors: tensors)
        try AtomicFile.write(state, to: files.staged)
        // The state keeps the permission bits of the file it replaces, as the model does.
        var info = stat()
        if stat(files.state, &info) == 0 { chmod(files.staged, info.st_mode & 0o7777) }
        try AtomicFile.write(model, to: files.resolved)  // the commit
        FileSteps.reached()
        guard rename(files.staged, files.state) == 0 else {
            return "the model was saved but its training state stays at \(files.staged) (cannot rename it into place: "
                + "\(String(cString: strerror(errno)))); --resume finds it there"
        }
        FileSteps.reached()
        AtomicFile.syncFolder(of: files.state)
        return nil
    }

    /// Moves a staged state into place when it is the one the checkpoint names (a save cut short after its commit).
    private static func settle(_ files: Files) {
        guard FileManager.default.fileExists(atPath: files.staged),
              let digest = stateDigest(ofCheckpointAt: files.resolved),
              let staged = try? readFileBytes(files.staged, what: "training state file"),
              fnv1a(staged) == digest else { return }
        if rename(files.staged, files.state) == 0 { AtomicFile.syncFolder(of: files.state) }
    }

    /// The `clnn.training-state` digest in the header of the checkpoint at `path`, read without its tensors.
    private static func stateDigest(ofCheckpointAt path: String) -> UInt64? {
        guard let metadata = try? SafeTensors.metadata(ofFileAt: path),
              let text = metadata["clnn.training-state"] else { return nil }
        return UInt64(text, radix: 16)
    }

    /// A run read back: the checkpoint's bytes and metadata, and the state that belongs to it.
    public struct Loaded {
        /// The checkpoint file's bytes (to build the model on a device: `Checkpoint.decode`).
        public let bytes: [UInt8]
        /// Its metadata.
        public let checkpoint: Checkpoint
        /// The training state saved with it.
        public let state: TrainingState
        /// The files.
        public let files: Files
        /// A remark for the user (a state recovered from an interrupted save, an unverifiable older pair), or nil.
        public let note: String?
    }

    /// Reads the run saved at `path`: its checkpoint and the training state bound to it. A save interrupted after
    /// its commit left the state staged: it is read there, and moved into place when `settle` is true (give it
    /// only while holding the file's lock: several readers must not move files).
    /// - Throws: `DataError` naming both files when there is no state, or the state does not belong to the checkpoint.
    public static func load(_ path: String, settle: Bool = false) throws -> Loaded {
        let files = try Files(path)
        let bytes = try readFileBytes(path, what: "checkpoint file", holding: 4)
        let (checkpoint, tensors) = try Checkpoint.verified(bytes, path: path, vocabulary: Checkpoint.vocabulary)
        guard !checkpoint.inferredFromShapes else {
            throw DataError(path, "is a plain state dict without clnn metadata: it holds weights, "
                + "not a run to continue")
        }
        let exists = { (p: String) in FileManager.default.fileExists(atPath: p) }
        guard let digest = checkpoint.trainingStateDigest else {
            // Written by `Checkpoint.save` (the model alone), or by clnn before states were bound to their models
            // (which put the state beside a symbolic link, not its target).
            guard let legacy = [files.state, TrainingState.path(besides: path)].first(where: exists) else {
                throw DataError(path, "no training state beside it (\(files.state)): it was saved without one")
            }
            let state = try TrainingState.load(legacy)
            guard state.modelDigest == nil, checkpoint.epoch == state.epoch, state.position.step == 0 else {
                throw DataError(legacy, "does not belong to \(path), which was saved without a training state "
                    + "(the model alone, by Checkpoint.save or an older clnn)")
            }
            return Loaded(bytes: bytes, checkpoint: checkpoint, state: state, files: files,
                          note: "\(legacy) is from an older clnn, which did not bind a state to its model: it was "
                              + "matched by its epoch (\(state.epoch)) only")
        }
        var seen: [(path: String, digest: UInt64)] = []
        // NOTE: twice: a reader that does not settle may see the staged state moved into place between its two reads.
        for (candidate, staged) in [(files.state, false), (files.staged, true), (files.state, false)]
            where exists(candidate) {
            let stateBytes = try readFileBytes(candidate, what: "training state file")
            let found = fnv1a(stateBytes)
            guard found == digest else {
                seen.append((candidate, found))
                continue
            }
            let state = try TrainingState.decode(stateBytes, path: candidate)
            guard state.modelDigest == SafeTensors.digest(tensors) else {
                throw DataError(candidate, "was saved with other weights than \(path)'s (its model digest "
                    + "\(state.modelDigest.map { String($0, radix: 16) } ?? "none") "
                    + "against \(String(SafeTensors.digest(tensors), radix: 16)))")
            }
            var note: String?
            if staged && settle {
                if rename(files.staged, files.state) == 0 {
                    AtomicFile.syncFolder(of: files.state)
                    note = "recovered the training state of the last save (cut short after its commit) "
                        + "into \(files.state)"
                    return Loaded(bytes: bytes, checkpoint: checkpoint, state: state,
                                  files: files, note: note)
                }
                note = "the training state of the last save is still at \(files.staged) (cannot move it into place: "
                    + "\(String(cString: strerror(errno))))"
            } else if staged {
                note = "read the training state of the last save from \(files.staged) "
                    + "(a save cut short after its commit)"
            }
            return Loaded(bytes: bytes, checkpoint: checkpoint, state: state, files: files, note: note)
        }
        guard let other = seen.first else {
            throw DataError(path, "no training state beside it (\(files.state))")
        }
        throw DataError(other.path, "does not belong to \(path): the checkpoint was saved with a training state of "
            + "digest \(String(digest, radix: 16)) but this file's is \(String(other.digest, radix: 16)) "
            + "(a state of another "
            + "run, or of another save of this one)")
    }
}
