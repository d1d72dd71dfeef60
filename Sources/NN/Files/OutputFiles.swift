/// The files one run will write, checked together before any work: each must be writable (`AtomicFile`'s rules),
/// no two may be the same file, and none may be one of the run's inputs — compared as files (device and inode), so
/// symbolic links, hard links and other spellings of a path are seen through.
@_spi(CLI) public enum OutputFiles {
    /// A problem with the set of outputs as a whole (the same file twice, an output that is an input).
    public struct Conflict: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// An output: the option that names it, its path, and the input it is meant to replace (a resumed checkpoint
    /// saved back in place), if any.
    public struct Output: Sendable {
        public let option: String
        public let path: String
        public let replaces: String?
        public init(_ option: String, _ path: String, replaces: String? = nil) {
            (self.option, self.path, self.replaces) = (option, path, replaces)
        }
    }

    /// Checks `outputs` against each other, against `inputs` (what the run reads, each with the words that name
    /// it) and against `reserved` (files the run keeps for itself while it lasts and removes at its end: its locks).
    /// Returns the resolved targets in the same order.
    /// - Throws: `DataError` naming the path for an output that cannot be written; `Conflict` naming both when two
    ///   outputs (or an output and an input other than the one it replaces, or a reserved file) are the same file.
    @discardableResult
    public static func check(_ outputs: [Output], inputs: [(what: String, path: String)] = [],
                             reserved: [(what: String, path: String)] = []) throws -> [AtomicFile.Target] {
        let kept = reserved.compactMap { file in (try? AtomicFile.resolve(file.path)).map { (file.what, $0) } }
        var targets: [(String, AtomicFile.Target)] = []
        for output in outputs {
            let target: AtomicFile.Target
            do {
                target = try AtomicFile.checkWritable(output.path)
            } catch let error as DataError {
                throw DataError(error.path, "\(output.option): \(error.problem)")
            }
            if let (other, _) = targets.first(where: { $0.1 == target }) {
                throw Conflict(description: "\(other) and \(output.option) name the same file (\(target.resolved)); "
                               + "one would overwrite the other — give each its own file")
            }
            if let (what, _) = kept.first(where: { $0.1 == target }) {
                throw Conflict(description: "\(output.option) \(output.path) is \(what) (\(target.resolved)), which "
                               + "the run keeps while it lasts and removes at its end — give another file")
            }
            let replaced = output.replaces.flatMap { FileIdentity(existing: $0) }
            for input in inputs
                where FileIdentity(existing: input.path) == target.identity && replaced != target.identity {
                throw Conflict(description: "\(output.option) \(output.path) is the input file \(input.path) "
                               + "(\(input.what)); "
                               + "writing it would destroy the input")
            }
            targets.append((output.option, target))
        }
        return targets.map(\.1)
    }
}
