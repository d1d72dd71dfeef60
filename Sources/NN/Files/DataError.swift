/// A problem with a data or checkpoint file: which file, and what is wrong with it.
public struct DataError: Error, CustomStringConvertible, Equatable {
    /// The file (or folder) the problem is in.
    public let path: String
    /// What is wrong with it.
    public let problem: String

    /// An error about `path`, printed as `path: problem`.
    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}
