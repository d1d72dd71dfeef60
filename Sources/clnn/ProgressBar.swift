import Foundation
@_spi(CLI) import NN

/// A live progress line on a terminal; a few plain lines per epoch otherwise.
final class ProgressBar {
    private let isTerminal = isatty(STDOUT_FILENO) != 0
    private var lastPlainQuarter = -1
    private var drawn = false

    func show(_ r: StepReport, epochs: Int) {
        let line = String(format: "epoch %d/%d %@ %d/%d  loss %.4f  %.0f items/s  ETA %@", r.epoch, epochs,
                          bar(r.step, r.steps), r.step, r.steps, r.runningLoss, r.itemsPerSecond, formatDuration(r.eta))
        if isTerminal {
            print("\r\u{1B}[K" + line, terminator: "")
            fflush(nil)
            drawn = true
        } else {
            let quarter = r.step * 4 / max(r.steps, 1)
            if quarter > lastPlainQuarter && r.step < r.steps {
                print(line)
                lastPlainQuarter = quarter
            }
        }
    }

    func finish() {
        if drawn { print("\r\u{1B}[K", terminator: "") }
        drawn = false
        lastPlainQuarter = -1
    }

    private func bar(_ step: Int, _ steps: Int) -> String {
        let width = 24
        let filled = steps > 0 ? step * width / steps : width
        return "[" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "]"
    }
}
