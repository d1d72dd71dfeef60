import Foundation

/// Training curves, drawn as an SVG: loss per step (with test loss per epoch) and test accuracy per epoch.
public struct TrainingCurves: Sendable {
    /// (fractional epoch, running training loss)
    public var stepLoss: [(Double, Double)] = []
    /// (epoch, test loss, test accuracy)
    public var epochs: [(Int, Double, Double)] = []
    /// The plot’s heading.
    public var title = "clnn training"

    /// Empty curves.
    public init() {}

    /// The curves as a standalone SVG document.
    public func svg() -> String {
        let width = 960.0, height = 400.0
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(width / 2)" y="22" text-anchor="middle" font-size="16">\(escape(title))</text>

            """
        let maxEpoch = Double(max(epochs.map(\.0).max() ?? 1, Int((stepLoss.map(\.0).max() ?? 1).rounded(.up)), 1))
        let losses = stepLoss.map(\.1) + epochs.map(\.1)
        let lossMax = (losses.filter(\.isFinite).max() ?? 1) * 1.05
        out += panel(x: 60, title: "loss", xMax: maxEpoch, yMin: 0, yMax: max(lossMax, 1e-6), series: [
            ("train (running)", "#1f77b4", stepLoss, false),
            ("test", "#d62728", epochs.map { (Double($0.0), $0.1) }, true),
        ])
        let accuracies = epochs.map(\.2)
        let accMin = max(0, ((accuracies.min() ?? 0) - 0.05) * 20).rounded(.down) / 20
        out += panel(x: 540, title: "test accuracy", xMax: maxEpoch, yMin: min(accMin, 0.9), yMax: 1, series: [
            ("test accuracy", "#2ca02c", epochs.map { (Double($0.0), $0.2) }, true),
        ])
        return out + "</svg>\n"
    }

    private func panel(x: Double, title: String, xMax: Double, yMin: Double, yMax: Double,
                       series: [(String, String, [(Double, Double)], Bool)]) -> String {
        let w = 380.0, h = 300.0, top = 50.0
        func px(_ v: Double) -> Double { x + v / xMax * w }
        func py(_ v: Double) -> Double { top + h - (v - yMin) / (yMax - yMin) * h }
        var s = "<g>\n<text x=\"\(x + w / 2)\" y=\"\(top - 8)\" text-anchor=\"middle\">\(escape(title))</text>\n"
        s += "<rect x=\"\(x)\" y=\"\(top)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#888\"/>\n"
        for i in 0...4 {
            let v = yMin + (yMax - yMin) * Double(i) / 4
            s += "<text x=\"\(x - 6)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
            s += "<line x1=\"\(x)\" x2=\"\(x + w)\" y1=\"\(py(v))\" y2=\"\(py(v))\" stroke=\"#eee\"/>\n"
        }
        for e in 0...Int(xMax) {
            s += "<text x=\"\(px(Double(e)))\" y=\"\(top + h + 16)\" text-anchor=\"middle\">\(e)</text>\n"
        }
        s += "<text x=\"\(x + w / 2)\" y=\"\(top + h + 34)\" text-anchor=\"middle\">epoch</text>\n"
        for (index, (name, color, points, markers)) in series.enumerated() {
            let finite = points.filter { $0.1.isFinite }
            if finite.count > 1 {
                let path = finite.map { "\(String(format: "%.1f", px($0.0))),\(String(format: "%.1f", py($0.1)))" }
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" "
                    + "points=\"\(path.joined(separator: " "))\"/>\n"
            }
            if markers {
                for p in finite { s += "<circle cx=\"\(px(p.0))\" cy=\"\(py(p.1))\" r=\"3.5\" fill=\"\(color)\"/>\n" }
            }
            let ly = top + 16 + Double(index) * 16
            s += "<rect x=\"\(x + w - 130)\" y=\"\(ly - 9)\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
            s += "<text x=\"\(x + w - 115)\" y=\"\(ly)\">\(escape(name))</text>\n"
        }
        return s + "</g>\n"
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
