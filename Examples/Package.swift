// swift-tools-version: 6.1
// Two programs that use CLNN as a library, to copy from. Build and run from this folder:
//   swift run custom-model [FOLDER]     (FOLDER: MNIST-format IDX files; default: Debian's Fashion-MNIST)
//   swift run hand-written-loop
// Needs the system packages a CLNN build needs: zlib1g-dev and OpenCL headers (ocl-icd-opencl-dev); an OpenCL driver
// (pocl-opencl-icd, or a GPU's) only to run on OpenCL devices.
import PackageDescription

let package = Package(
    name: "CLNNExamples",
    dependencies: [
        // `traits: []`: the library alone, without the command line's dependencies.
        .package(url: "https://github.com/clnn-project/clnn.git", from: "0.1.0", traits: []),
    ],
    targets: [
        .executableTarget(name: "custom-model", dependencies: [.product(name: "CLNN", package: "clnn")]),
        .executableTarget(name: "hand-written-loop", dependencies: [.product(name: "CLNN", package: "clnn")]),
    ]
)
