import Foundation

/// A kernel named by its file, its name and its build options, made once (a `static let` beside its op). Its slot
/// number lets every device find the kernel it built by array index, so a launch does no string work and no
/// dictionary lookup (hashing the name and options per launch once took a third of a training step's host time).
struct KernelSource: Sendable, CustomStringConvertible {
    let file: String
    let name: String
    let options: String
    /// A kernel file whose text goes before `file`'s in the same program, for definitions it shares (the matmul
    /// epilogue applies activation.cl's F).
    let prelude: String?
    let slot: Int

    init(_ file: String, _ name: String, options: String = "", prelude: String? = nil) {
        self.file = file
        self.name = name
        self.options = options
        self.prelude = prelude
        slot = KernelSource.slots.take()
    }

    var description: String {
        "\(name) (\(prelude.map { $0 + ".cl + " } ?? "")\(file).cl\(options.isEmpty ? "" : " " + options))"
    }

    private static let slots = SlotCounter()
}

/// Hands out 0, 1, 2, ... to the kernel sources of the process.
final class SlotCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    func take() -> Int {
        lock.lock()
        defer { lock.unlock() }
        next += 1
        return next - 1
    }
}

/// A launch's work sizes in one, two or three dimensions, without an array.
struct WorkSize: Sendable {
    var x: Int
    var y: Int
    var z: Int
    let dimensions: Int
    init(_ x: Int) { (self.x, y, z, dimensions) = (x, 1, 1, 1) }
    init(_ x: Int, _ y: Int) { (self.x, self.y, z, dimensions) = (x, y, 1, 2) }
    init(_ x: Int, _ y: Int, _ z: Int) { (self.x, self.y, self.z, dimensions) = (x, y, z, 3) }
    var isEmpty: Bool { x == 0 || y == 0 || z == 0 }
    func rounded(up local: WorkSize) -> WorkSize {
        var out = self
        out.x = (x + local.x - 1) / local.x * local.x
        out.y = (y + local.y - 1) / local.y * local.y
        out.z = (z + local.z - 1) / local.z * local.z
        return out
    }
}
