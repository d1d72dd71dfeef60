/// The files one run will write, checked together before any work: each must be writable (`AtomicFile`'s rules),
/// no two may be the same file, and none may be one of the run's inputs.
@_spi(CLI) public enum OutputFiles {
    /// A problem with the set of outputs as a whole (the same file twice, an output that is an input).
    public struct Conflict: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Checks `outputs` (option name, path) against each other and against `inputs` (paths of files the run
    /// reads). Returns the resolved targets in the same order.
    /// - Throws: `DataError` naming the path for an output that cannot be written; `Conflict` naming both options
    ///   when two outputs (or an output and an input) resolve to the same file.
    @discardableResult
    public static func check(_ outputs: [(option: String, path: String)], inputs: [String] = []) throws -> [AtomicFile.Target] {
        var targets: [(String, AtomicFile.Target)] = []
        for (option, path) in outputs {
            let target: AtomicFile.Target
            do {
                target = try AtomicFile.checkWritable(path)
            } catch let error as DataError {
                throw DataError(error.path, "\(option): \(error.problem)")
            }
            if let (other, _) = targets.first(where: { $0.1 == target }) {
                throw Conflict(description: "\(other) and \(option) name the same file (\(target.resolved)); "
                               + "one would overwrite the other — give each its own file")
            }
            for input in inputs where FileIdentity(existing: input) == target.identity {
                throw Conflict(description: "\(option) \(path) is the input file \(input); writing it would destroy the input")
            }
            targets.append((option, target))
        }
        return targets.map(\.1)
    }
}
