"""Tensor ops. Functions use the course's names; the op classes keep theirs."""
from .ops_logarithmic import (
    LogSoftmax, LogSumExp, SoftmaxCrossEntropy, SoftmaxCrossEntropyLabels, logsoftmax, logsumexp, softmax,
    softmax_cross_entropy, softmax_cross_entropy_labels,
)
from .ops_mathematic import (
    AddScalar, BroadcastTo, Dilate, DivScalar, EWiseAdd, EWiseDiv, EWiseMul, EWisePow, Exp, Flip, GetItem,
    Gather, Log, MatMul, MatMulBias, MatMulNT, MatMulTN, Max, Min, MulScalar, Negate, Pad, Permute, PowerScalar,
    RDivScalar, ReLU, ReLUBackward, Reshape, Cast, RPowerScalar, ScalarOp, ScatterAddRows, ScatterItem, Sigmoid,
    Sqrt, Summation, Tanh, ToDevice, Transpose, UnDilate, add, add_scalar, broadcast_to, cast, dilate, divide,
    divide_scalar, dot, exp, flatten, flip, get_item, log, matmul, matmul_bias, matmul_nt, matmul_tn, max, mean,
    min, mul_scalar, multiply, negate, pad, permute, power, power_scalar, rdivide_scalar, relu, reshape,
    rpower_scalar, sigmoid, sqrt, squeeze, summation, tanh, transpose, unbroadcast, undilate, unsqueeze,
)
from .ops_compare import (
    Abs, ArgReduce, Clip, Compare, Extremum, ExtremumScalar, Logical, Where, abs, argmax, argmin, clip, compare,
    eq, ge, gt, le, logical_and, logical_not, logical_or, logical_xor, lt, maximum, minimum, ne, where,
)
from .ops_tuple import (
    Concatenate, MakeTensorTuple, Split, Stack, TensorTuple, TupleAdjoint, TupleGetItem, concatenate, make_tuple,
    split, stack, tuple_get_item,
)

__all__ = [name for name in dir() if not name.startswith("_") and name not in (
    "ops_compare", "ops_logarithmic", "ops_mathematic", "ops_tuple")]
from .ops_conv import Col2Im, Conv, Im2Col, avg_pool2d, col2im, conv, im2col, max_pool2d
__all__ += ["Col2Im", "Conv", "Im2Col", "avg_pool2d", "col2im", "conv", "im2col", "max_pool2d"]
