# mypy: ignore-errors
"""Raw data pointers of numba arrays, for the kernels' calls of model ``cfunc`` s.

``arr.ctypes`` inside numba code builds a ctypes view that holds a reference to the array: an
atomic increment and decrement of its reference count (``NRT_incref``/``NRT_decref``, ``lock``
instructions) for each use.  The ODE kernel passes three such views per right-hand-side call,
and perf showed ~40 % of a ``car_t`` solve's samples in those two functions, from these views
and from owned arrays passed to inlined functions (:func:`borrowed`).  :func:`ptr` returns the
array's data pointer itself (``CPointer(dtype)``), borrowed: the caller keeps the array alive,
which every kernel does (its work arrays live to the end of the function that uses them).
"""

from numba import njit, types
from numba.extending import intrinsic

from ..network import use_cache_dir_for_numba

use_cache_dir_for_numba(__file__)  # before the decorators below


@intrinsic
def ptr(typingctx, arr):
    """``arr``'s data pointer (C-contiguous array; no reference taken)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, value=args[0]).data

    return sig, codegen


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` without a reference: the same data, shape and strides, no meminfo.

    numba increments and decrements an array's reference count (atomically) whenever a
    variable takes it, e.g. each argument of an inlined function at every call; for a
    borrowed array those are tests of a null pointer.  The caller must keep ``arr`` itself
    alive for as long as the borrowed array is used (see :func:`keep`)."""
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, value=args[0])
        dst = context.make_array(arr)(context, builder)
        for field in ("data", "shape", "strides", "itemsize", "nitems"):
            setattr(dst, field, getattr(src, field))
        dst.meminfo = context.get_constant_null(types.MemInfoPointer(arr.dtype))
        dst.parent = context.get_constant_null(types.pyobject)
        return dst._getvalue()

    return sig, codegen


@njit(nogil=True, cache=True)
def keep(a):
    """A use of ``a``: numba frees an array after the last statement that uses it, so a
    function that works on :func:`borrowed` views of ``a`` calls this after the last of them."""
    return a.shape[0]
