import Foundation

/// The OpenCL C sources of CLNN's kernels, one per op family (`matmul`, `activation`, `loss`, ...).
///
/// They are compiled into the binary from `Kernels/*.cl`. Setting `CLNN_KERNELS_DIR` to a folder makes any
/// `NAME.cl` found there replace the built-in `NAME` source, without a rebuild: handy while developing kernels.
/// A `CLNN_KERNELS_DIR` that is not a readable folder is an error, never silently ignored.
///
/// A file shares definitions with another through `#include "NAME.cl"` on a line of its own (a file without
/// kernels, such as `rows.cl`): the line is replaced by that file's text, so each definition is written once.
enum KernelLibrary {
    static let overrideVariable = "CLNN_KERNELS_DIR"

    /// The names of the built-in kernel files (those that define kernels; not the files they include).
    static var names: [String] { EmbeddedKernels.sources.filter { $0.value.contains("__kernel") }.keys.sorted() }

    /// The build options a file needs to compile at all, used when every program is built ahead (warm-up):
    /// activation.cl is built once per activation, and ReLU is the default model's; loss.cl takes the loss numbering.
    static let defaultOptions = ["activation": Activation.relu.options, "loss": LossKind.defines]

    /// The generated text a file is built after: the op tables of the strided elementwise and reduction kernels, and
    /// how their work-items cover the elements on this kind of device (see strided.cl).
    static func header(_ name: String, rowLoop: Bool) -> String {
        let table = ["pointwise": PointwiseTable.header, "reduce": ReductionTable.header][name]
        guard let table else { return "" }
        return table + StridedOperands.header(rowLoop: rowLoop)
    }

    /// The source of `name` (the override folder's copy if there is one, else the built-in one), its includes
    /// replaced by their text.
    static func source(_ name: String) throws -> String {
        try expandIncludes(try file(name), in: name, depth: 0)
    }

    /// Replaces each `#include "NAME.cl"` line of `text` (from file `name`) by NAME's source.
    private static func expandIncludes(_ text: String, in name: String, depth: Int) throws -> String {
        guard text.contains("#include") else { return text }
        guard depth < 8 else {
            throw OpenCLError.missingSource(name, searched: "includes nested more than 8 deep "
                + "(a file that includes itself?)")
        }
        return try text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("#include \""), trimmed.hasSuffix(".cl\"") else { return String(line) }
            let included = String(trimmed.dropFirst("#include \"".count).dropLast(".cl\"".count))
            return try expandIncludes(try file(included), in: included, depth: depth + 1)
        }.joined(separator: "\n")
    }

    /// The text of kernel file `name`, as stored.
    private static func file(_ name: String) throws -> String {
        if let folder = ProcessInfo.processInfo.environment[overrideVariable], !folder.isEmpty {
            try checkOverrideFolder(folder)
            let path = URL(fileURLWithPath: folder).appendingPathComponent("\(name).cl").path
            var info = stat()
            if lstat(path, &info) == 0 {
                guard let bytes = readRegularFile(path) else {
                    throw OpenCLError.badKernelsFolder(folder, problem: "\(path) is not a readable regular file")
                }
                return String(decoding: bytes, as: UTF8.self)
            }
        }
        guard let text = EmbeddedKernels.sources[name] else {
            throw OpenCLError.missingSource(name, searched: "built-in kernels \(names)")
        }
        return text
    }

    private static func checkOverrideFolder(_ folder: String) throws {
        var info = stat()
        guard stat(folder, &info) == 0 else {
            throw OpenCLError.badKernelsFolder(folder, problem: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw OpenCLError.badKernelsFolder(folder, problem: "not a folder (it should hold NAME.cl files)")
        }
        guard access(folder, R_OK | X_OK) == 0 else {
            throw OpenCLError.badKernelsFolder(folder,
                                               problem: "cannot read the folder: \(String(cString: strerror(errno)))")
        }
    }
}

/// The bytes of the regular file at `path`, or nil for anything else (missing, a FIFO, a device, unreadable).
func readRegularFile(_ path: String) -> [UInt8]? {
    try? RegularFile.read(path)
}
