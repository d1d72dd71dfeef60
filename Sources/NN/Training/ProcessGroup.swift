import CMPI
import Foundation

/// The processes of a run started by `mpirun` (Open MPI), each training one replica: gradients are summed across them
/// with `MPI_Allreduce` on one flat buffer per step. Open MPI is loaded at run time, only when the environment says
/// the process is one of several ranks; a single process never touches it.
public final class ProcessGroup: @unchecked Sendable {
    /// This process's rank, from 0.
    public let rank: Int
    /// How many processes the job has.
    public let size: Int
    /// The rank among the processes on this host (to pick a device: `opencl:(localRank mod count)`).
    public let localRank: Int

    private init(rank: Int, size: Int, localRank: Int) {
        (self.rank, self.size, self.localRank) = (rank, size, localRank)
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var joined: ProcessGroup?

    /// The group this process joined, if it did.
    public static var current: ProcessGroup? { lock.withLock { joined } }

    /// Joins the job's process group when `mpirun` started this process as one of several ranks (Open MPI's
    /// `OMPI_COMM_WORLD_SIZE` > 1); nil otherwise.
    /// - Throws: `DeviceError.invalidArgument` when Open MPI cannot be loaded or initialised.
    public static func join(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> ProcessGroup? {
        if let group = current { return group }
        guard let text = environment["OMPI_COMM_WORLD_SIZE"], let expected = Int(text), expected > 1 else { return nil }
        var error = [CChar](repeating: 0, count: 512)
        guard clnn_mpi_load(&error, error.count) == 0 else {
            throw DeviceError.invalidArgument(op: "mpi",
                                              String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) },
                                                     as: UTF8.self))
        }
        guard clnn_mpi_init() == 0 else { throw DeviceError.invalidArgument(op: "mpi", "MPI_Init failed") }
        var rank: Int32 = 0, size: Int32 = 0
        guard clnn_mpi_rank(&rank) == 0, clnn_mpi_size(&size) == 0 else {
            throw DeviceError.invalidArgument(op: "mpi", "MPI_Comm_rank/MPI_Comm_size failed")
        }
        let local = environment["OMPI_COMM_WORLD_LOCAL_RANK"].flatMap(Int.init) ?? Int(rank)
        let group = ProcessGroup(rank: Int(rank), size: Int(size), localRank: local)
        lock.withLock { joined = group }
        return group
    }

    /// The element-wise sum of `values` over every rank, in place.
    public func allreduceSum(_ values: inout [Float]) throws {
        let status = values.withUnsafeMutableBufferPointer {
            clnn_mpi_allreduce_sum_float($0.baseAddress, Int32($0.count))
        }
        guard status == 0 else {
            throw DeviceError.invalidArgument(op: "mpi", "MPI_Allreduce of \(values.count) floats failed (\(status))")
        }
    }

    /// The element-wise sum of `values` over every rank.
    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        var out = values
        let status = out.withUnsafeMutableBufferPointer {
            clnn_mpi_allreduce_sum_double($0.baseAddress, Int32($0.count))
        }
        guard status == 0 else {
            throw DeviceError.invalidArgument(op: "mpi", "MPI_Allreduce of \(values.count) doubles failed (\(status))")
        }
        return out
    }

    /// `values` as rank `root` has them, on every rank.
    public func broadcast(_ values: inout [Float], from root: Int = 0) throws {
        let status = values.withUnsafeMutableBufferPointer {
            clnn_mpi_bcast_float($0.baseAddress, Int32($0.count), Int32(root))
        }
        guard status == 0 else {
            throw DeviceError.invalidArgument(op: "mpi", "MPI_Bcast of \(values.count) floats failed (\(status))")
        }
    }

    /// Every rank's `values` (the same count on each), in rank order.
    public func allgather(_ values: [Double]) throws -> [[Double]] {
        var out = [Double](repeating: 0, count: values.count * size)
        let status = values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer {
                clnn_mpi_allgather_double(v.baseAddress, Int32(values.count), $0.baseAddress)
            }
        }
        guard status == 0 else { throw DeviceError.invalidArgument(op: "mpi", "MPI_Allgather failed (\(status))") }
        return (0..<size).map { Array(out[$0 * values.count..<($0 + 1) * values.count]) }
    }

    /// Ends every rank's process with `code` (after an error on one rank, so that no other waits forever).
    public func abort(_ code: Int32) -> Never {
        clnn_mpi_abort(code)
        exit(code)
    }

    /// Leaves the group at the end of a run.
    public func finalize() { _ = clnn_mpi_finalize() }
}
