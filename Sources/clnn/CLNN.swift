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
}

/// Writes a line to standard error.
func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
