import Foundation

/// The OpenCL C sources of CLNN's kernels, one per op family (`matmul`, `relu`, ...).
///
/// They are compiled into the binary from `Kernels/*.cl`. Setting `CLNN_KERNELS_DIR` to a folder makes any
/// `NAME.cl` found there replace the built-in `NAME` source, without a rebuild: handy while developing kernels.
public enum KernelLibrary {
    public static let overrideVariable = "CLNN_KERNELS_DIR"

    /// The names of the built-in kernel files.
    public static var names: [String] { EmbeddedKernels.sources.keys.sorted() }

    /// The source of `name`: the override folder's copy if there is one, else the built-in one.
    public static func source(_ name: String) throws -> String {
        if let folder = ProcessInfo.processInfo.environment[overrideVariable], !folder.isEmpty {
            let path = URL(fileURLWithPath: folder).appendingPathComponent("\(name).cl").path
            if FileManager.default.fileExists(atPath: path) {
                do {
                    return try String(contentsOfFile: path, encoding: .utf8)
                } catch {
                    throw OpenCLError.missingSource(name, searched: "\(path): \(error.localizedDescription)")
                }
            }
        }
        guard let text = EmbeddedKernels.sources[name] else {
            throw OpenCLError.missingSource(name, searched: "built-in kernels \(names)")
        }
        return text
    }
}
