import ArgumentParser
import Device
import Foundation

@main
struct CLNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clnn",
        abstract: "A tiny neural-network training backend on OpenCL, with CPU fallbacks.",
        subcommands: [Train.self, Eval.self, Inspect.self, Devices.self, Bench.self]
    )

    /// Runs the command, then prints the per-kernel profile when CLNN_PROFILE=1.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
            printProfile()
        } catch {
            printProfile()
            exit(withError: error)
        }
    }

    static func printProfile() {
        if let report = Profiler.shared.report() { warn("\nOpenCL profile (CLNN_PROFILE=1):\n" + report) }
    }
}

/// Writes a line to standard error.
func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
