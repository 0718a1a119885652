//! ONNX export of the depth paths (one graph per path; weights as shared graph inputs).
