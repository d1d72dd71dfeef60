import Device
import Foundation
print(DeviceTag.available)
let a = try Tensor.randn([3,4], seed: 1, on: .opencl(0))
print(try a.relu().toArray(), try a.to(.cpu).relu().toArray())
