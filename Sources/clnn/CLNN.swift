import ArgumentParser
import Device
import Foundation
import Logging
import NN

@main
struct CLNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clnn",
        abstract: "A tiny neural-network training backend on OpenCL, with CPU fallbacks.",
        subcommands: [Train.self, Eval.self, Inspect.self, Devices.self, Check.self, Bench.self]
    )

    /// Runs the command, then prints the per-kernel profile when CLNN_PROFILE=1. Every exit, good or bad, first
    /// waits for the OpenCL work already queued, so that no driver thread is still running while the process ends.
    static func main() {
        // Each line reaches a redirected stdout (a log file, systemd, docker) at once, so a kill loses nothing printed.
        setLineBuffered()
        CLNNLog.logger = Logger(label: "clnn") { _ in PlainStderrLogHandler() }
        // An error the subcommand's run throws (a usage error found there) shows the subcommand's usage, as the
        // parser's own errors do.
        var parsed: ParsableCommand.Type = CLNN.self
        if let threads = ProcessInfo.processInfo.environment["CLNN_THREADS"], !threads.isEmpty,
           !(Int(threads).map { (1...1 << 20).contains($0) } ?? false) {
            // (The pool reads it on its first product, where it could only be ignored.)
            warn("Error: CLNN_THREADS='\(threads.prefix(40))' is not a thread count: a whole number in 1...1048576 "
                + "(at most that many threads for the cpu device; unset, every online core)")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        do {
            var command = try parseAsRoot(joiningNegativeNumbers(Array(CommandLine.arguments.dropFirst())))
            parsed = type(of: command)
            try command.run()
            finish()
        } catch let stop as AgreedStop {
            // Every process stops at the same step and leaves the group in order: no abort, the signal's status.
            finish()
            Foundation.exit(stop.status)
        } catch {
            if let group = ProcessGroup.current {
                // NOTE: one process stopping alone would leave the others waiting in the next allreduce forever.
                let message = fullMessage(for: error, from: parsed)
                if !message.isEmpty { warn("clnn (process \(group.rank) of \(group.size)): " + message) }
                OpenCLRuntime.shared.finishAll()
                group.abort(exitCode(for: error).rawValue == 0 ? 1 : exitCode(for: error).rawValue)
            }
            finish()
            if Interrupt.requested, !(error is ExitCode) {
                // A signal arrived and then something failed (a read cut short, say): the signal is the cause.
                warn("clnn: stopped by signal \(Interrupt.signal): \(fullMessage(for: error, from: parsed))")
                Foundation.exit(Interrupt.exitStatus)
            }
            if error is ValidationError {
                warn(fullMessage(for: error, from: parsed))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
            exit(withError: error)
        }
    }

    /// The message for `error` from the run of the subcommand `parsed`: a usage error names that subcommand's usage
    /// (`Usage: clnn train <options>`), as the parser's own errors do; the rest as the parser words them.
    static func fullMessage(for error: Error, from parsed: ParsableCommand.Type) -> String {
        guard error is ValidationError, parsed != CLNN.self else { return fullMessage(for: error) }
        func path(_ command: ParsableCommand.Type) -> [String]? {
            if command == parsed { return [command._commandName] }
            for sub in command.configuration.subcommands {
                if let rest = path(sub) { return [command._commandName] + rest }
            }
            return nil
        }
        let name = (path(CLNN.self) ?? ["clnn", parsed._commandName]).joined(separator: " ")
        return "Error: \(message(for: error))\nUsage: \(usageString(for: parsed))\n"
            + "  See '\(name) --help' for more information."
    }

    static func finish() {
        OpenCLRuntime.shared.finishAll()
        ProcessGroup.current?.finalize()
        if let report = OpenCLRuntime.shared.profileReport() { warn("\nOpenCL profile (CLNN_PROFILE=1):\n" + report) }
        fflush(nil)
    }

    /// `--lr -1` → `--lr=-1`: the argument parser reads a lone `-1` as a short option, so a negative value after
    /// an option would be "missing"; joined, it reaches the option and its range check names the real problem.
    static func joiningNegativeNumbers(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            if arg.hasPrefix("--"), !arg.contains("="), arg.count > 2, i + 1 < arguments.count,
               isNegativeNumber(arguments[i + 1]) {
                out.append(arg + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(arg)
                i += 1
            }
        }
        return out
    }

    static func isNegativeNumber(_ text: String) -> Bool {
        text.count > 1 && text.hasPrefix("-") && Double(text) != nil
    }

}

/// A stop every process of an mpirun job agreed on (an interrupt), already reported: they end together with `status`.
struct AgreedStop: Error {
    let status: Int32
}

/// Writes a line to standard error.
func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
