"""Shared kits: the pieces several tasks build on, with public names, below `shopfloor.tasks`.

- `onnx`: what every ONNX exporter does the same way: the file name and opset checks, exporting a
  network with torch.export and the TorchScript fallback, the keys every file's metadata carries, the
  atomic write, running a file with onnxruntime and measuring how far it is from torch.
- `page`: the HTML report kit every task's report page is written with.

A kit knows nothing of any task: a task's package asks the kit, never the other way round.
"""
