/*
 * gateway_proto._speedups: the wire layer's input buffer, with its hot path in C.
 *
 * A Scanner holds the bytes the connection buffered (`data`) and the offset of
 * the next frame (`pos`), as the pure-Python _wire_reader._PlainInput does. Its
 * `next()` takes the frame at `pos` if it is the common case and returns the
 * decoded payload: a whole unmasked FIN text or binary frame; a zlib-stream
 * message that ends with the Z_SYNC_FLUSH suffix while nothing is pending, any
 * whole zstd-stream or payload-compressed (`compress: true`) message, or no
 * compression; and a JSON (or ETF) payload. Op 0 comes back as a Dispatch, any
 * other op as an (op, d, s, t) tuple. Anything else, and every frame that is not
 * whole yet, it leaves alone (returns None, `pos` unchanged) for the Python code
 * in _wire_reader.py, which is also the reference: this file must make exactly
 * the decisions WireReader._parse makes, and tests/proto/test_speedups.py checks
 * that it does on arbitrary input. (_wire.py makes the Scanner and hands it the
 * callables below; no Python name is imported from here.)
 *
 * It does no I/O and keeps no state beyond the buffer: the inflate context, the
 * decoder and the checks are Python callables it is given (the inflater's own,
 * from compression.py), and every error they raise goes to the `on_error`
 * callable, which turns it into the same item the Python path gives (or raises
 * it again). On success no Python code runs: only C callables (zlib, zstandard,
 * orjson) are called; the Python checks run only once a check has failed.
 *
 * `run()` is next() in a loop for the drivers' hot path (the connection's
 * take_dispatches): each ordinary dispatch (not READY or RESUMED, a sequence
 * above the last one handed out, a name already counted) goes straight into a
 * list as the caller's make(name, data, sequence, raw), counted; the first item
 * that is anything else ends the run and goes back to the connection, which
 * processes it as it processes next()'s items. ReceivePath._take_dispatches is
 * its reference, and tests/proto/test_take_dispatches.py checks both against
 * events().
 *
 * Bounds: every read of `data` is checked against its size before it is made;
 * a frame's length is compared with the size cap before any offset arithmetic
 * that could overflow.
 *
 * Two small helpers for the drivers live here too: SlotMaker (builds one
 * GatewayEvent per dispatch) and BufferedAnext with its Next awaitable (an
 * `events()` stream hands out a buffered event without running a coroutine).
 *
 * One file, though long: the extension is one translation unit, its helpers
 * `static` (inlinable, invisible outside), and setup.py builds it as one
 * optional source.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define FIN_TEXT 0x81
#define FIN_BINARY 0x82

/* How binary messages are inflated (`inflate` set). */
enum {
    INFLATE_PYTHON,  /* leave every binary message to Python */
    INFLATE_ZLIB_STREAM,
    INFLATE_ZSTD_STREAM,
    INFLATE_PAYLOAD,
};

/* zstd's largest block (compression._ZSTD_BLOCK): no block decodes to more. */
#define ZSTD_BLOCK (128 * 1024)

typedef struct {
    PyObject_HEAD
    /* The input buffer (the attributes the Python parser shares). */
    PyObject *data;       /* bytes: the buffered input */
    Py_ssize_t pos;       /* where the next frame starts */
    char fragmenting;     /* a fragmented message is in progress: take nothing */
    /* What to do with a frame: all Python callables, so errors stay Python's. */
    PyObject *decode;     /* bytes -> object (JSON loads), or bytes -> item (ETF) */
    PyObject *envelope;   /* object -> item, raising the precise error */
    PyObject *on_error;   /* exception -> item (a WireFailed), or raises it again */
    int decoded;          /* `decode` returns the (op, d, s, t) item itself */
    /* Compression: binary messages are inflated (`inflate`), the `mode` way, with
     * the inflater's pieces (NULL for INFLATE_PYTHON: Python does it):
     *   zlib-stream: decompress(data, limit), pending (bytearray), check(out);
     *   zstd-stream: decompress(data), check = refuse(size) (raises);
     *   payload: decompress = decompressobj(), check(context, out). */
    int inflate;
    int mode;
    PyObject *decompress;
    PyObject *pending;
    PyObject *check;
    Py_ssize_t max_size;
    PyObject *limit;      /* max_size + 1: decompress's max_length */
    /* The Dispatch class (or NULL: op 0 stays a tuple) and its slot descriptors:
     * setting them is object.__setattr__ without the lookup (Dispatch is frozen,
     * so its own __setattr__ refuses). */
    PyObject *dispatch;
    PyObject *name_slot, *data_slot, *sequence_slot, *raw_slot;
    int keep_raw;         /* a Dispatch's raw is the message's bytes (else None) */
    /* Counters shared with the Python parser (which adds to them through the
     * members below): whole messages taken, and their size after inflating. */
    long long messages;
    long long payload_bytes;
    /* Set while run() is on: where its ordinary dispatches go (see Scanner_run). */
    struct Run *run;
} Scanner;

/* What run() takes ordinary dispatches into; all borrowed from its arguments. */
typedef struct Run {
    PyObject *into;       /* list */
    PyObject *make;       /* make(name, data, sequence, raw) */
    PyObject *counts;     /* dict: name -> count, or NULL */
    long long last_s;     /* the highest sequence handed out */
    Py_ssize_t taken;
} Run;

/* What new_dispatch returns for a dispatch run() took (a fresh object at import:
 * no item is ever it). */
static PyObject *taken_marker;

static PyObject *str_op, *str_d, *str_s, *str_t;
static PyObject *str_decompress, *str_eof, *str_unused_data;

/* Read `name` off `obj` into `*out` (a new reference); 0, or -1 with an exception. */
static int
get_attr(PyObject *obj, const char *name, PyObject **out)
{
    *out = PyObject_GetAttrString(obj, name);
    return *out == NULL ? -1 : 0;
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"decode", "envelope", "on_error", "max_size", "inflate",
                             "decoded", "zlib_stream", "dispatch", "zstd_stream", "payload",
                             "keep_raw", NULL};
    PyObject *decode, *envelope, *on_error, *zlib_stream = Py_None, *dispatch = Py_None;
    PyObject *zstd_stream = Py_None, *payload = Py_None;
    PyObject *decompress = NULL, *pending = NULL, *check = NULL;
    Py_ssize_t max_size;
    int inflate, decoded, keep_raw = 0;
    int mode = INFLATE_PYTHON;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOnpp|OOOOp:Scanner", kwlist, &decode,
                                     &envelope, &on_error, &max_size, &inflate, &decoded,
                                     &zlib_stream, &dispatch, &zstd_stream, &payload,
                                     &keep_raw)) {
        return -1;
    }
    if ((zlib_stream != Py_None) + (zstd_stream != Py_None) + (payload != Py_None) > 1) {
        PyErr_SetString(PyExc_ValueError,
                        "at most one of zlib_stream, zstd_stream and payload");
        return -1;
    }
    if (max_size < 0 || max_size == PY_SSIZE_T_MAX) {
        PyErr_SetString(PyExc_ValueError, "max_size out of range");
        return -1;
    }
    PyObject *limit = PyLong_FromSsize_t(max_size + 1);
    if (limit == NULL) {
        return -1;
    }
    if (zlib_stream != Py_None) {
        decompress = PyObject_GetAttrString(zlib_stream, "decompress");
        pending = decompress ? PyObject_GetAttrString(zlib_stream, "pending") : NULL;
        check = pending ? PyObject_GetAttrString(zlib_stream, "check") : NULL;
        if (check != NULL && !PyByteArray_Check(pending)) {
            PyErr_SetString(PyExc_TypeError, "zlib_stream.pending must be a bytearray");
            Py_CLEAR(check);
        }
        if (check == NULL) {
            Py_XDECREF(decompress);
            Py_XDECREF(pending);
            Py_DECREF(limit);
            return -1;
        }
        mode = INFLATE_ZLIB_STREAM;
    }
    else if (zstd_stream != Py_None || payload != Py_None) {
        int zstd = zstd_stream != Py_None;
        PyObject *inflater = zstd ? zstd_stream : payload;
        if (get_attr(inflater, zstd ? "decompress" : "decompressobj", &decompress) < 0
            || get_attr(inflater, zstd ? "refuse" : "check", &check) < 0) {
            Py_XDECREF(decompress);
            Py_DECREF(limit);
            return -1;
        }
        mode = zstd ? INFLATE_ZSTD_STREAM : INFLATE_PAYLOAD;
    }
    Py_XSETREF(self->limit, limit);
    Py_INCREF(decode);
    Py_XSETREF(self->decode, decode);
    Py_INCREF(envelope);
    Py_XSETREF(self->envelope, envelope);
    Py_INCREF(on_error);
    Py_XSETREF(self->on_error, on_error);
    Py_XSETREF(self->data, PyBytes_FromStringAndSize(NULL, 0));
    if (self->data == NULL) {
        return -1;
    }
    self->pos = 0;
    self->fragmenting = 0;
    self->messages = 0;
    self->payload_bytes = 0;
    Py_XSETREF(self->decompress, decompress);
    Py_XSETREF(self->pending, pending);
    Py_XSETREF(self->check, check);
    self->max_size = max_size;
    self->inflate = inflate;
    self->mode = inflate ? mode : INFLATE_PYTHON;
    self->decoded = decoded;
    self->keep_raw = keep_raw;
    if (dispatch != Py_None) {
        if (!PyType_Check(dispatch)) {
            PyErr_SetString(PyExc_TypeError, "dispatch must be a class");
            return -1;
        }
        PyObject *name_slot = PyObject_GetAttrString(dispatch, "name");
        PyObject *data_slot = name_slot ? PyObject_GetAttrString(dispatch, "data") : NULL;
        PyObject *sequence_slot = data_slot ? PyObject_GetAttrString(dispatch, "sequence") : NULL;
        PyObject *raw_slot = sequence_slot ? PyObject_GetAttrString(dispatch, "raw") : NULL;
        if (raw_slot == NULL) {
            Py_XDECREF(name_slot);
            Py_XDECREF(data_slot);
            Py_XDECREF(sequence_slot);
            return -1;
        }
        if (Py_TYPE(name_slot)->tp_descr_set == NULL || Py_TYPE(data_slot)->tp_descr_set == NULL
            || Py_TYPE(sequence_slot)->tp_descr_set == NULL
            || Py_TYPE(raw_slot)->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "dispatch needs name, data, sequence and raw slots");
            Py_DECREF(name_slot);
            Py_DECREF(data_slot);
            Py_DECREF(sequence_slot);
            Py_DECREF(raw_slot);
            return -1;
        }
        Py_INCREF(dispatch);
        Py_XSETREF(self->dispatch, dispatch);
        Py_XSETREF(self->name_slot, name_slot);
        Py_XSETREF(self->data_slot, data_slot);
        Py_XSETREF(self->sequence_slot, sequence_slot);
        Py_XSETREF(self->raw_slot, raw_slot);
    }
    else {
        Py_CLEAR(self->dispatch);
        Py_CLEAR(self->name_slot);
        Py_CLEAR(self->data_slot);
        Py_CLEAR(self->sequence_slot);
        Py_CLEAR(self->raw_slot);
    }
    return 0;
}

static int
Scanner_traverse(Scanner *self, visitproc visit, void *arg)
{
    Py_VISIT(self->decompress);
    Py_VISIT(self->pending);
    Py_VISIT(self->decode);
    Py_VISIT(self->envelope);
    Py_VISIT(self->check);
    Py_VISIT(self->on_error);
    Py_VISIT(self->dispatch);
    Py_VISIT(self->name_slot);
    Py_VISIT(self->data_slot);
    Py_VISIT(self->sequence_slot);
    Py_VISIT(self->raw_slot);
    return 0;
}

static int
Scanner_clear(Scanner *self)
{
    Py_CLEAR(self->decompress);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->decode);
    Py_CLEAR(self->envelope);
    Py_CLEAR(self->check);
    Py_CLEAR(self->limit);
    Py_CLEAR(self->on_error);
    Py_CLEAR(self->data);
    Py_CLEAR(self->dispatch);
    Py_CLEAR(self->name_slot);
    Py_CLEAR(self->data_slot);
    Py_CLEAR(self->sequence_slot);
    Py_CLEAR(self->raw_slot);
    return 0;
}

static void
Scanner_dealloc(Scanner *self)
{
    PyObject_GC_UnTrack(self);
    Scanner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int run_take(Run *run, PyObject *t, PyObject *d, PyObject *s, PyObject *raw);

/* Dispatch(name=t, data=d, sequence=s, raw=raw), built as _wire_reader._as_item builds it;
 * while run() is on, an ordinary one is taken into its list instead (taken_marker). */
static PyObject *
new_dispatch(Scanner *self, PyObject *t, PyObject *d, PyObject *s, PyObject *raw)
{
    if (self->run != NULL) {
        /* run() is on: an ordinary dispatch goes straight into its list, made
         * without a Dispatch in between. */
        int taken = run_take(self->run, t, d, s, raw);
        if (taken != 0) {
            return taken < 0 ? NULL : Py_NewRef(taken_marker);
        }
    }
    PyTypeObject *type = (PyTypeObject *)self->dispatch;
    PyObject *event = type->tp_alloc(type, 0);
    if (event == NULL) {
        return NULL;
    }
    if (Py_TYPE(self->name_slot)->tp_descr_set(self->name_slot, event, t) < 0
        || Py_TYPE(self->data_slot)->tp_descr_set(self->data_slot, event, d) < 0
        || Py_TYPE(self->sequence_slot)->tp_descr_set(self->sequence_slot, event, s) < 0
        || Py_TYPE(self->raw_slot)->tp_descr_set(self->raw_slot, event, raw) < 0) {
        Py_DECREF(event);
        return NULL;
    }
    return event;
}

/* Whether `s` is a sequence number codecs._envelope accepts: an int (not a
 * bool) from 0 to MAX_SEQUENCE (codecs.MAX_SEQUENCE, 2**53 - 1). */
#define MAX_SEQUENCE ((1LL << 53) - 1)

static int
sequence_ok(PyObject *s)
{
    if (!PyLong_CheckExact(s)) {
        return 0;
    }
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(s, &overflow);
    return !overflow && value >= 0 && value <= MAX_SEQUENCE;
}

/* The item of a decoded JSON object (`message`: its bytes): inline when it has
 * Discord's shape, else whatever the Python envelope check returns or raises. */
static PyObject *
envelope_of(Scanner *self, PyObject *obj, PyObject *message)
{
    PyObject *raw = self->keep_raw ? message : Py_None;
    if (PyDict_CheckExact(obj)) {
        PyObject *op = PyDict_GetItemWithError(obj, str_op);
        PyObject *s = op ? PyDict_GetItemWithError(obj, str_s) : NULL;
        PyObject *t = s ? PyDict_GetItemWithError(obj, str_t) : NULL;
        PyObject *d = t ? PyDict_GetItemWithError(obj, str_d) : NULL;
        if (d == NULL && PyErr_Occurred()) {
            return NULL;
        }
        if (d != NULL && PyLong_CheckExact(op) && (s == Py_None || sequence_ok(s))
            && (t == Py_None || PyUnicode_CheckExact(t))) {
            int overflow;
            if (self->dispatch == NULL || PyLong_AsLongAndOverflow(op, &overflow) != 0
                || overflow) {
                return PyTuple_Pack(4, op, d, s, t);
            }
            if (t != Py_None) {
                return new_dispatch(self, t, d, s, raw);
            }
            /* op 0 without a name: the envelope check raises the precise error */
        }
    }
    PyObject *item = PyObject_CallOneArg(self->envelope, obj);
    /* An unusual but valid dispatch (a key missing, say) keeps its bytes too. */
    if (item != NULL && raw != Py_None && self->dispatch != NULL
        && Py_TYPE(item) == (PyTypeObject *)self->dispatch
        && Py_TYPE(self->raw_slot)->tp_descr_set(self->raw_slot, item, raw) < 0) {
        Py_CLEAR(item);
    }
    return item;
}

/* Whether `out` (what a decompress callable returned) is bytes; else a TypeError. */
static int
check_bytes(PyObject *out)
{
    if (PyBytes_CheckExact(out)) {
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "decompress() must return bytes");
    return -1;
}

/* zstd-stream: the inflater's refuse(size) raises the size cap's error (NULL). */
static PyObject *
refuse(Scanner *self, size_t size)
{
    PyObject *n = PyLong_FromSize_t(size);
    if (n == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallOneArg(self->check, n);
    Py_DECREF(n);
    if (result != NULL) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_TypeError, "refuse() must raise");
    }
    return NULL;
}

/* zstd-stream: the message inflated through the connection's context, as
 * compression.ZstdStreamInflater.feed does it: a short message in one call, a
 * long one in slices small enough that the output passes the cap by at most
 * one block (see that class). The frame's length is within the cap already. */
static PyObject *
inflate_zstd(Scanner *self, PyObject *compressed)
{
    Py_ssize_t size = PyBytes_GET_SIZE(compressed);
    Py_ssize_t cap = self->max_size;
    PyObject *out;
    if (size <= 3 * (cap / ZSTD_BLOCK) + 2) {
        out = PyObject_CallOneArg(self->decompress, compressed);
        if (out == NULL || check_bytes(out) < 0) {
            Py_XDECREF(out);
            return NULL;
        }
        if (PyBytes_GET_SIZE(out) > cap) {
            size_t got = (size_t)PyBytes_GET_SIZE(out);
            Py_DECREF(out);
            return refuse(self, got);
        }
        return out;
    }
    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(compressed);
    Py_ssize_t produced = 0;
    for (Py_ssize_t pos = 0; pos < size;) {
        /* `produced` <= cap here, so the step is at least 2 and never overflows. */
        Py_ssize_t step = 3 * ((cap - produced) / ZSTD_BLOCK) + 2;
        Py_ssize_t n = size - pos < step ? size - pos : step;
        PyObject *slice = PyBytes_FromStringAndSize(buf + pos, n);
        if (slice == NULL) {
            goto fail;
        }
        PyObject *part = PyObject_CallOneArg(self->decompress, slice);
        Py_DECREF(slice);
        if (part == NULL || check_bytes(part) < 0) {
            Py_XDECREF(part);
            goto fail;
        }
        pos += n;
        Py_ssize_t got = PyBytes_GET_SIZE(part);
        if (got > cap - produced) {
            Py_DECREF(part);
            /* Both are sizes of objects in memory: their sum fits a size_t. */
            refuse(self, (size_t)produced + (size_t)got);
            goto fail;
        }
        produced += got;
        int appended = PyList_Append(parts, part);
        Py_DECREF(part);
        if (appended < 0) {
            goto fail;
        }
    }
    out = PyBytes_FromStringAndSize(NULL, produced);
    if (out == NULL) {
        goto fail;
    }
    char *to = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        memcpy(to, PyBytes_AS_STRING(part), (size_t)PyBytes_GET_SIZE(part));
        to += PyBytes_GET_SIZE(part);
    }
    Py_DECREF(parts);
    return out;
fail:
    Py_DECREF(parts);
    return NULL;
}

/* Payload compression: the message is one whole zlib stream, inflated by a
 * fresh context with the cap as max_length (as PayloadInflater.feed does);
 * check(context, out) raises if it is too large, truncated or trailed. */
static PyObject *
inflate_payload(Scanner *self, PyObject *compressed)
{
    PyObject *context = PyObject_CallNoArgs(self->decompress);
    if (context == NULL) {
        return NULL;
    }
    PyObject *call_args[3] = {context, compressed, self->limit};
    PyObject *out = PyObject_VectorcallMethod(
        str_decompress, call_args, 3, NULL);
    if (out == NULL || check_bytes(out) < 0) {
        goto fail;
    }
    int ok = PyBytes_GET_SIZE(out) <= self->max_size;
    if (ok) {
        PyObject *eof = PyObject_GetAttr(context, str_eof);
        if (eof == NULL) {
            goto fail;
        }
        ok = eof == Py_True;
        Py_DECREF(eof);
    }
    if (ok) {
        PyObject *unused = PyObject_GetAttr(context, str_unused_data);
        if (unused == NULL) {
            goto fail;
        }
        ok = PyBytes_CheckExact(unused) && PyBytes_GET_SIZE(unused) == 0;
        Py_DECREF(unused);
    }
    if (!ok) {
        PyObject *check_args[2] = {context, out};
        Py_SETREF(out, PyObject_Vectorcall(self->check, check_args, 2, NULL));
    }
    Py_DECREF(context);
    return out;
fail:
    Py_XDECREF(out);
    Py_DECREF(context);
    return NULL;
}

/* zlib-stream: the message inflated through the connection's context, capped
 * (decompress's max_length); check(out) raises for too much or nothing. */
static PyObject *
inflate_zlib(Scanner *self, PyObject *compressed)
{
    PyObject *call_args[2] = {compressed, self->limit};
    PyObject *message = PyObject_Vectorcall(self->decompress, call_args, 2, NULL);
    if (message == NULL || check_bytes(message) < 0) {
        Py_XDECREF(message);
        return NULL;
    }
    Py_ssize_t inflated = PyBytes_GET_SIZE(message);
    if (inflated > self->max_size || inflated == 0) {
        Py_SETREF(message, PyObject_CallOneArg(self->check, message));
    }
    return message;
}

/* The item of the frame at data[pos:] if it is the common case (then `pos` is
 * moved past it, even if decoding it fails), a new reference to None if not
 * (nothing consumed), or NULL with an exception set. */
static PyObject *
take(Scanner *self)
{
    /* `payload` below points into `data`; it is copied before any Python code
     * runs (which could replace `self->data`). */
    PyObject *data = self->data;
    Py_ssize_t pos = self->pos;
    if (self->fragmenting || data == NULL || self->on_error == NULL) { /* or no __init__ */
        Py_RETURN_NONE;
    }
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (pos < 0 || pos > size || size - pos < 2) { /* `pos` is settable: never trust it */
        Py_RETURN_NONE;
    }
    unsigned char first = buf[pos];
    if (first != FIN_BINARY && first != FIN_TEXT) {
        Py_RETURN_NONE;
    }
    uint64_t length = buf[pos + 1];
    Py_ssize_t start;
    if (length < 126) {
        start = pos + 2;
    }
    else if (length == 126) {
        if (size - pos < 4) {
            Py_RETURN_NONE;
        }
        start = pos + 4;
        length = ((uint64_t)buf[pos + 2] << 8) | buf[pos + 3];
        if (length < 126) {
            Py_RETURN_NONE; /* not minimal: the careful path refuses it */
        }
    }
    else if (length == 127) {
        if (size - pos < 10) {
            Py_RETURN_NONE;
        }
        start = pos + 10;
        length = 0;
        for (int i = 2; i < 10; i++) {
            length = (length << 8) | buf[pos + i];
        }
        if (length < 65536 || (length >> 63)) {
            Py_RETURN_NONE;
        }
    }
    else {
        Py_RETURN_NONE; /* masked: the careful path refuses it */
    }
    /* The cap first: it bounds `length`, so `start + length` cannot overflow. */
    if (length > (uint64_t)self->max_size || (Py_ssize_t)length > size - start) {
        Py_RETURN_NONE; /* too large (the careful path says so), or incomplete */
    }
    Py_ssize_t end = start + (Py_ssize_t)length;
    const unsigned char *payload = buf + start;
    PyObject *message;
    if (first == FIN_BINARY && self->inflate) {
        int mode = self->mode;
        if (mode == INFLATE_PYTHON
            || (mode == INFLATE_ZLIB_STREAM
                && (length < 4 || memcmp(payload + length - 4, "\x00\x00\xff\xff", 4) != 0
                    || PyByteArray_GET_SIZE(self->pending) != 0))) {
            Py_RETURN_NONE; /* a split zlib-stream payload, or one pending: Python's feed() */
        }
        /* From here on the frame is taken, whatever the outcome. */
        self->pos = end;
        PyObject *compressed = PyBytes_FromStringAndSize((const char *)payload, length);
        if (compressed == NULL) {
            return NULL;
        }
        message = mode == INFLATE_ZLIB_STREAM   ? inflate_zlib(self, compressed)
                  : mode == INFLATE_ZSTD_STREAM ? inflate_zstd(self, compressed)
                                                : inflate_payload(self, compressed);
        Py_DECREF(compressed);
        if (message == NULL) {
            return NULL;
        }
    }
    else {
        self->pos = end;
        message = PyBytes_FromStringAndSize((const char *)payload, length);
        if (message == NULL) {
            return NULL;
        }
    }
    self->messages++;
    self->payload_bytes += PyBytes_GET_SIZE(message);
    PyObject *obj = PyObject_CallOneArg(self->decode, message);
    if (obj == NULL || self->decoded || !self->keep_raw) {
        /* Free the inflated bytes before the caller inflates the next message:
         * the allocator then hands the same cache-hot block back. */
        Py_DECREF(message);
        if (obj == NULL || self->decoded) {
            return obj;
        }
        message = NULL;
    }
    PyObject *item = envelope_of(self, obj, message);
    Py_DECREF(obj);
    Py_XDECREF(message);
    return item;
}

/* The item of the frame take() failed on (the Python side decides whether a
 * peer fault or a bug, as it does for its own path), or NULL if it raises. */
static PyObject *
failed_item(Scanner *self)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    PyObject *item = PyObject_CallOneArg(self->on_error, value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return item;
}

/* next() -> item | None: take the common-case frame at `pos`, or None. */
static PyObject *
Scanner_next(Scanner *self, PyObject *unused)
{
    if (self->run != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner.next() called while run() is on");
        return NULL;
    }
    PyObject *item = take(self);
    return item != NULL ? item : failed_item(self);
}

/* Whether `name` is READY or RESUMED: the dispatches the session state machine
 * must see (never taken by run()). */
static int
is_session_dispatch(PyObject *name)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    return (length == 5 && PyUnicode_CompareWithASCIIString(name, "READY") == 0)
           || (length == 7 && PyUnicode_CompareWithASCIIString(name, "RESUMED") == 0);
}

/* Take one dispatch into the run if it is ordinary: a str name other than READY
 * and RESUMED, a sequence that is None or above every one handed out (anything
 * else may be a replay: the connection checks it), and a name already counted
 * (a new one is counted by the caller, which bounds the names). 1 if taken, 0 if
 * not (nothing changed), -1 with an exception. */
static int
run_take(Run *run, PyObject *t, PyObject *d, PyObject *s, PyObject *raw)
{
    if (!PyUnicode_CheckExact(t) || is_session_dispatch(t)) {
        return 0;
    }
    long long sequence = run->last_s;
    if (s != Py_None) {
        if (!PyLong_CheckExact(s)) {
            return 0;
        }
        int overflow;
        sequence = PyLong_AsLongLongAndOverflow(s, &overflow);
        if (overflow || sequence <= run->last_s) {
            return 0;  /* (-1 with an error cannot exceed last_s, never below 0) */
        }
    }
    PyObject *count = NULL;
    long long counted = 0;
    if (run->counts != NULL) {
        count = PyDict_GetItemWithError(run->counts, t);
        if (count == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
        if (!PyLong_CheckExact(count)) {
            return 0;
        }
        int overflow;
        counted = PyLong_AsLongLongAndOverflow(count, &overflow);
        if (overflow || counted < 0 || counted == LLONG_MAX) {
            return 0;
        }
    }
    PyObject *args[4] = {t, d, s, raw};
    PyObject *event = PyObject_Vectorcall(run->make, args, 4, NULL);
    if (event == NULL) {
        return -1;
    }
    int failed = PyList_Append(run->into, event);
    Py_DECREF(event);
    if (failed < 0) {
        return -1;
    }
    if (count != NULL) {
        PyObject *next = PyLong_FromLongLong(counted + 1);
        if (next == NULL || PyDict_SetItem(run->counts, t, next) < 0) {
            Py_XDECREF(next);
            return -1;
        }
        Py_DECREF(next);
    }
    run->last_s = sequence;
    run->taken++;
    return 1;
}

/* run_take for a Dispatch made elsewhere (ETF's decoder, the envelope check). */
static int
run_take_dispatch(Scanner *self, Run *run, PyObject *item)
{
    PyObject *slots[4] = {self->name_slot, self->data_slot, self->sequence_slot, self->raw_slot};
    PyObject *values[4] = {NULL, NULL, NULL, NULL};
    int taken = -1;
    for (int i = 0; i < 4; i++) {
        values[i] = Py_TYPE(slots[i])->tp_descr_get(slots[i], item, self->dispatch);
        if (values[i] == NULL) {
            goto done;
        }
    }
    taken = run_take(run, values[0], values[1], values[2], values[3]);
done:
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(values[i]);
    }
    return taken;
}

/* run(into, make, limit, last_s, counts, payload_bound) -> (taken, last_s, item):
 * take the ordinary dispatches at `pos` into `into` as make(name, data,
 * sequence, raw), each as next() would decode it, until `limit` are taken, the
 * payload bytes exceed `payload_bound` (if not negative), or the next frame is
 * not the common case (`item` None) or not an ordinary dispatch (`item` is what
 * next() would have returned for it). `last_s` comes back raised to the last
 * sequence taken. An error after some were taken comes back as `item` (the
 * exception), so that what was taken is not lost. */
static PyObject *
Scanner_run(Scanner *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "run(into, make, limit, last_s, counts, payload_bound) takes 6 arguments");
        return NULL;
    }
    PyObject *into = args[0], *make = args[1], *counts = args[4];
    if (!PyList_CheckExact(into) || !PyCallable_Check(make)
        || (counts != Py_None && !PyDict_CheckExact(counts))) {
        PyErr_SetString(PyExc_TypeError, "run() needs a list, a callable and a dict or None");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    long long last_s = PyLong_AsLongLong(args[3]);
    long long bound = PyLong_AsLongLong(args[5]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (self->run != NULL || self->dispatch == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        self->run ? "run() is already on" : "run() needs the dispatch class");
        return NULL;
    }
    Run run = {into, make, counts == Py_None ? NULL : counts, last_s, 0};
    PyObject *item = NULL;
    self->run = &run;
    while (run.taken < limit) {
        item = take(self);
        if (item == NULL) {
            item = failed_item(self);
            if (item == NULL) {
                break;
            }
        }
        if (item == taken_marker) {
            Py_CLEAR(item);
        }
        else if (Py_TYPE(item) == (PyTypeObject *)self->dispatch) {
            int taken = run_take_dispatch(self, &run, item);
            if (taken == 0) {
                break;
            }
            Py_CLEAR(item);
            if (taken < 0) {
                break;
            }
        }
        else {
            break;  /* None, or an item the connection must see */
        }
        if (bound >= 0 && self->payload_bytes > bound) {
            break;
        }
    }
    self->run = NULL;
    if (item == NULL && PyErr_Occurred()) {
        PyObject *type, *traceback;
        PyErr_Fetch(&type, &item, &traceback);
        PyErr_NormalizeException(&type, &item, &traceback);
        if (traceback != NULL) {
            PyException_SetTraceback(item, traceback);
        }
        Py_XDECREF(type);
        Py_XDECREF(traceback);
    }
    return Py_BuildValue("(nLN)", run.taken, run.last_s, item != NULL ? item : Py_NewRef(Py_None));
}

static PyMethodDef Scanner_methods[] = {
    {"next", (PyCFunction)Scanner_next, METH_NOARGS,
     "next() -> item or None: decode the common-case frame at data[pos:]."},
    {"run", (PyCFunction)(void (*)(void))Scanner_run, METH_FASTCALL,
     "run(into, make, limit, last_s, counts, payload_bound) -> (taken, last_s, item):\n"
     "take the ordinary dispatches at data[pos:] into `into`."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
Scanner_get_data(Scanner *self, void *closure)
{
    if (self->data == NULL) { /* __init__ never ran */
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    return Py_NewRef(self->data);
}

static int
Scanner_set_data(Scanner *self, PyObject *value, void *closure)
{
    if (value == NULL || !PyBytes_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->data, value);
    return 0;
}

static PyGetSetDef Scanner_getset[] = {
    {"data", (getter)Scanner_get_data, (setter)Scanner_set_data, "The buffered input.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Scanner_members[] = {
    {"pos", T_PYSSIZET, offsetof(Scanner, pos), 0, "Where the next frame starts."},
    {"fragmenting", T_BOOL, offsetof(Scanner, fragmenting), 0,
     "A fragmented message is in progress (next() takes nothing)."},
    {"messages", T_LONGLONG, offsetof(Scanner, messages), 0,
     "Whole messages taken so far (by next() and the Python parser)."},
    {"payload_bytes", T_LONGLONG, offsetof(Scanner, payload_bytes), 0,
     "Their size after decompression, in bytes."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway_proto._speedups.Scanner",
    .tp_doc = "The wire layer's input buffer, with its hot path: common frames to payloads.",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_traverse = (traverseproc)Scanner_traverse,
    .tp_clear = (inquiry)Scanner_clear,
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
    .tp_members = Scanner_members,
};

/*
 * SlotMaker(cls, names, fixed={}): a callable that builds an instance of a
 * slotted class from positional values, one per name, by setting the slots
 * through their descriptors (as a frozen dataclass's __init__ does through
 * object.__setattr__, without the Python-level calls), and the slots `fixed`
 * names to its values: the drivers build one GatewayEvent per dispatch with it
 * (the shard's id and shard fixed, for Scanner.run's make). It runs no __init__ and no
 * __post_init__, so it only suits classes whose __init__ just stores its
 * arguments; driver_support checks that it builds what the class's own
 * constructor builds.
 */
#define SLOT_MAKER_MAX 8

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t count;     /* slots set from the arguments, in order */
    Py_ssize_t fixed;     /* then slots set to the same value every time */
    PyObject *slots[SLOT_MAKER_MAX];
    PyObject *values[SLOT_MAKER_MAX];  /* the fixed slots' values (from index `count`) */
    vectorcallfunc vectorcall;
} SlotMaker;

static PyObject *
SlotMaker_vectorcall(SlotMaker *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, "SlotMaker takes positional arguments only");
        return NULL;
    }
    if (nargs != self->count) {
        PyErr_Format(PyExc_TypeError, "SlotMaker for %s takes %zd arguments (%zd given)",
                     self->cls->tp_name, self->count, nargs);
        return NULL;
    }
    PyObject *obj = self->cls->tp_alloc(self->cls, 0);
    if (obj == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *slot = self->slots[i];
        if (Py_TYPE(slot)->tp_descr_set(slot, obj, args[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    for (Py_ssize_t i = nargs; i < nargs + self->fixed; i++) {
        PyObject *slot = self->slots[i];
        if (Py_TYPE(slot)->tp_descr_set(slot, obj, self->values[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

static int
SlotMaker_traverse(SlotMaker *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cls);
    for (Py_ssize_t i = 0; i < self->count + self->fixed; i++) {
        Py_VISIT(self->slots[i]);
        Py_VISIT(self->values[i]);
    }
    return 0;
}

static int
SlotMaker_clear(SlotMaker *self)
{
    Py_CLEAR(self->cls);
    for (Py_ssize_t i = 0; i < self->count + self->fixed; i++) {
        Py_CLEAR(self->slots[i]);
        Py_CLEAR(self->values[i]);
    }
    self->count = 0;
    self->fixed = 0;
    return 0;
}

static void
SlotMaker_dealloc(SlotMaker *self)
{
    PyObject_GC_UnTrack(self);
    SlotMaker_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject SlotMakerType;

/* The member descriptor of `cls`'s own slot `name` (a new reference), or NULL
 * with a TypeError: anything else (a property, an inherited attribute, a
 * method) would not be a plain slot. */
static PyObject *
own_slot(PyTypeObject *cls, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "SlotMaker names must be str");
        return NULL;
    }
    PyObject *slot = PyDict_GetItemWithError(cls->tp_dict, name);
    if (slot == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "%s has no slot %R", cls->tp_name, name);
        }
        return NULL;
    }
    if (Py_TYPE(slot) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "%s.%U is not a slot", cls->tp_name, name);
        return NULL;
    }
    return Py_NewRef(slot);
}

static PyObject *
SlotMaker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls, *names, *fixed = NULL;
    static char *keywords[] = {"cls", "names", "fixed", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!|O!:SlotMaker", keywords, &PyType_Type,
                                     &cls, &PyTuple_Type, &names, &PyDict_Type, &fixed)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    Py_ssize_t nfixed = fixed == NULL ? 0 : PyDict_GET_SIZE(fixed);
    if (count + nfixed > SLOT_MAKER_MAX) {
        PyErr_Format(PyExc_ValueError, "SlotMaker sets at most %d slots", SLOT_MAKER_MAX);
        return NULL;
    }
    SlotMaker *self = (SlotMaker *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)SlotMaker_vectorcall;
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *slot = own_slot(self->cls, PyTuple_GET_ITEM(names, i));
        if (slot == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        self->slots[i] = slot;
        self->count = i + 1;
    }
    Py_ssize_t at = 0;
    PyObject *name, *value;
    while (fixed != NULL && PyDict_Next(fixed, &at, &name, &value)) {
        PyObject *slot = own_slot(self->cls, name);
        if (slot == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        self->slots[count + self->fixed] = slot;
        self->values[count + self->fixed] = Py_NewRef(value);
        self->fixed++;
    }
    return (PyObject *)self;
}

static PyTypeObject SlotMakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway_proto._speedups.SlotMaker",
    .tp_doc = "SlotMaker(cls, names, fixed={}): builds cls instances from positional slot\n"
              "values, with the slots named in `fixed` set to its values.",
    .tp_basicsize = sizeof(SlotMaker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SlotMaker, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = SlotMaker_new,
    .tp_dealloc = (destructor)SlotMaker_dealloc,
    .tp_traverse = (traverseproc)SlotMaker_traverse,
    .tp_clear = (inquiry)SlotMaker_clear,
};

/*
 * BufferedAnext: the base of an async iterator over a deque (`_items`), as
 * driver_support.buffers.PyBufferedAnext is in Python, whose `__anext__` is a
 * coroutine: when it first runs it pops the oldest item, or awaits the
 * subclass's `_wait_next()` (a coroutine that waits, ends the iteration or
 * raises) when there is none. Here `__anext__` returns a Next, which does the
 * same when it is first sent to, but hands a buffered item back at once (no
 * frame, no exception through am_send) and is reused for the next item once
 * nobody else holds it: `async for` over buffered items runs no Python code and
 * allocates nothing per item. Like the coroutine, it takes its item when it first
 * runs, not when it is made: one made and never run (a task cancelled before its
 * first step) takes nothing.
 */
typedef struct BufferedAnext BufferedAnext;

/*
 * Next: the awaitable of one `__anext__()` call, a coroutine in all but type
 * (send, throw and close; collections.abc.Coroutine recognises it, so a task can
 * run it). Its states:
 *   pending     `owner` set: the first send pops owner's oldest item and returns
 *               it, or, none being buffered (another consumer took it meanwhile),
 *               calls owner._wait_next() and delegates to that;
 *   delegating  `delegate` set: send, throw and close go to the coroutine from
 *               _wait_next until it finishes, as `await` would forward them;
 *   finished    neither: running it again is an error, as for a coroutine.
 * Python 3.10 and 3.11 send through am_send; 3.12's SEND (and 3.11 under a
 * tracer) through tp_iternext or the send method: all three take one path.
 */
typedef struct {
    PyObject_HEAD
    BufferedAnext *owner;
    PyObject *delegate;
} Next;

struct BufferedAnext {
    PyObject_HEAD
    PyObject *items;  /* a collections.deque, or NULL before it is set */
    Next *spare;      /* the last Next handed out, reused once nobody else holds it */
};

static PyTypeObject NextType;
static PyObject *deque_popleft;  /* collections.deque.popleft (checks its argument's type) */
static PyObject *str_wait_next, *str_throw, *str_close;

static PyObject *
Next_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PySendResult
Next_forward(Next *self, PyObject *arg, PyObject **result)
{
    /* Held across the send: the code it runs may close this Next. */
    PyObject *delegate = Py_NewRef(self->delegate);
    PySendResult status = PyIter_Send(delegate, arg, result);
    if (status != PYGEN_NEXT && self->delegate == delegate) {
        self->delegate = NULL;
        Py_DECREF(delegate);
    }
    Py_DECREF(delegate);
    return status;
}

static PyObject *
awaitable_iter(PyObject *awaitable)  /* what `await` sends to (new reference) */
{
    if (PyCoro_CheckExact(awaitable)) {
        return Py_NewRef(awaitable);
    }
    unaryfunc getter = Py_TYPE(awaitable)->tp_as_async != NULL
        ? Py_TYPE(awaitable)->tp_as_async->am_await : NULL;
    if (getter == NULL) {
        PyErr_Format(PyExc_TypeError, "_wait_next() returned a '%.100s', not an awaitable",
                     Py_TYPE(awaitable)->tp_name);
        return NULL;
    }
    return getter(awaitable);
}

static PySendResult
Next_start(Next *self, PyObject *arg, PyObject **result)
{
    if (arg != Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "can't send non-None value to a just-started __anext__()");
        *result = NULL;
        return PYGEN_ERROR;
    }
    BufferedAnext *owner = self->owner;  /* our reference now: finished unless delegating */
    self->owner = NULL;
    PyObject *items = owner->items;
    *result = NULL;
    if (items == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_items");
        Py_DECREF(owner);
        return PYGEN_ERROR;
    }
    Py_ssize_t size = PyObject_Length(items);
    if (size > 0) {
        *result = PyObject_Vectorcall(deque_popleft, &items, 1, NULL);
        Py_DECREF(owner);
        return *result == NULL ? PYGEN_ERROR : PYGEN_RETURN;
    }
    PyObject *awaitable = size < 0 ? NULL
        : PyObject_CallMethodNoArgs((PyObject *)owner, str_wait_next);
    Py_DECREF(owner);
    if (awaitable == NULL) {
        return PYGEN_ERROR;
    }
    PyObject *delegate = awaitable_iter(awaitable);
    Py_DECREF(awaitable);
    if (delegate == NULL) {
        return PYGEN_ERROR;
    }
    Py_XSETREF(self->delegate, delegate);
    return Next_forward(self, Py_None, result);
}

static PySendResult
Next_send(Next *self, PyObject *arg, PyObject **result)
{
    if (self->owner != NULL) {
        return Next_start(self, arg, result);
    }
    if (self->delegate != NULL) {
        return Next_forward(self, arg, result);
    }
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited __anext__()");
    *result = NULL;
    return PYGEN_ERROR;
}

static PyObject *
iterator_result(PySendResult status, PyObject *result)
{
    if (status != PYGEN_RETURN) {
        return result;  /* a value yielded, or NULL with the error set */
    }
    /* The exception built here, not by PyErr_SetObject: a tuple value would become
     * its arguments. */
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
Next_iternext(Next *self)
{
    PyObject *result;
    PySendResult status = Next_send(self, Py_None, &result);
    return iterator_result(status, result);
}

static PyObject *
Next_send_method(Next *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = Next_send(self, arg, &result);
    return iterator_result(status, result);
}

static PyObject *
raise_thrown(PyObject *const *args, Py_ssize_t nargs)
{
    /* What throw() into a coroutine that has not started (or has ended) does:
     * raise it, whichever of its forms it came in. */
    PyObject *typ = args[0];
    PyObject *val = nargs > 1 ? args[1] : Py_None;
    PyObject *tb = nargs > 2 ? args[2] : Py_None;
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    }
    else if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from BaseException, "
                     "not %.100s", Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (tb != Py_None) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (value != NULL) {
            PyException_SetTraceback(value, tb);
        }
        Py_XSETREF(traceback, Py_NewRef(tb));
        PyErr_Restore(type, value, traceback);
    }
    return NULL;
}

static PyObject *
Next_throw(Next *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *delegate = self->delegate;
    if (delegate == NULL) {
        Py_CLEAR(self->owner);  /* a pending one ends without taking anything */
        return raise_thrown(args, nargs);
    }
    Py_INCREF(delegate);
    PyObject *call[4] = {delegate, args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL};
    PyObject *result = PyObject_VectorcallMethod(
        str_throw, call, (size_t)(nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    /* An error out of it (StopIteration with its value included) means it ended. */
    if (result == NULL && self->delegate == delegate) {
        self->delegate = NULL;
        Py_DECREF(delegate);
    }
    Py_DECREF(delegate);
    return result;
}

static PyObject *
Next_close(Next *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *delegate = self->delegate;
    if (delegate == NULL) {
        Py_CLEAR(self->owner);  /* a pending one ends without taking anything */
        Py_RETURN_NONE;
    }
    self->delegate = NULL;  /* our reference now */
    PyObject *result = PyObject_CallMethodNoArgs(delegate, str_close);
    Py_DECREF(delegate);
    return result;
}

static int
Next_traverse(Next *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->delegate);
    return 0;
}

static int
Next_clear(Next *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->delegate);
    return 0;
}

static void
Next_dealloc(Next *self)
{
    PyObject_GC_UnTrack(self);
    Next_clear(self);  /* a delegate still waiting is closed by its own finalizer */
    PyObject_GC_Del(self);
}

static PyMethodDef Next_methods[] = {
    {"send", (PyCFunction)Next_send_method, METH_O, "Send a value in, as coroutine.send."},
    {"throw", (PyCFunction)(void (*)(void))Next_throw, METH_FASTCALL,
     "Raise an exception in it, as coroutine.throw."},
    {"close", (PyCFunction)Next_close, METH_NOARGS, "Close it, as coroutine.close."},
    {NULL},
};

static PyAsyncMethods Next_async = {
    .am_await = Next_await,
    .am_send = (sendfunc)Next_send,
};

static PyTypeObject NextType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway_proto._speedups.Next",
    .tp_doc = "The awaitable of BufferedAnext.__anext__(): takes the oldest item when "
              "it first runs, else awaits _wait_next().",
    .tp_basicsize = sizeof(Next),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_as_async = &Next_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Next_iternext,
    .tp_methods = Next_methods,
    .tp_dealloc = (destructor)Next_dealloc,
    .tp_traverse = (traverseproc)Next_traverse,
    .tp_clear = (inquiry)Next_clear,
};

static PyObject *
BufferedAnext_anext(BufferedAnext *self)
{
    /* `async for` drops the awaitable once it has its item: then only this
     * iterator holds it, nobody can tell it from a new one, and it carries the
     * next item (no allocation per item). One held elsewhere, or still waiting in
     * _wait_next, is left alone. */
    Next *next = self->spare;
    if (next != NULL && Py_REFCNT(next) == 1 && next->delegate == NULL) {
        if (next->owner == NULL) {
            next->owner = (BufferedAnext *)Py_NewRef(self);
        }
        return Py_NewRef(next);
    }
    next = PyObject_GC_New(Next, &NextType);
    if (next == NULL) {
        return NULL;
    }
    next->owner = (BufferedAnext *)Py_NewRef(self);
    next->delegate = NULL;
    PyObject_GC_Track(next);
    Py_XSETREF(self->spare, (Next *)Py_NewRef(next));
    return (PyObject *)next;
}

static int
BufferedAnext_traverse(BufferedAnext *self, visitproc visit, void *arg)
{
    Py_VISIT(self->items);
    Py_VISIT(self->spare);
    return 0;
}

static int
BufferedAnext_clear(BufferedAnext *self)
{
    Py_CLEAR(self->items);
    Py_CLEAR(self->spare);
    return 0;
}

static void
BufferedAnext_dealloc(BufferedAnext *self)
{
    PyObject_GC_UnTrack(self);
    BufferedAnext_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef BufferedAnext_members[] = {
    {"_items", T_OBJECT_EX, offsetof(BufferedAnext, items), 0,
     "The buffered items, oldest first (a collections.deque)."},
    {NULL},
};

static PyMethodDef BufferedAnext_methods[] = {
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL},
};

static PyAsyncMethods BufferedAnext_async = {
    .am_aiter = PyObject_SelfIter,
    .am_anext = (unaryfunc)BufferedAnext_anext,
};

static PyTypeObject BufferedAnextType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway_proto._speedups.BufferedAnext",
    .tp_doc = "Base of an async iterator over a deque: __anext__'s awaitable pops "
              "when it first runs, else awaits _wait_next().",
    .tp_basicsize = sizeof(BufferedAnext),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_as_async = &BufferedAnext_async,
    .tp_members = BufferedAnext_members,
    .tp_methods = BufferedAnext_methods,
    .tp_dealloc = (destructor)BufferedAnext_dealloc,
    .tp_traverse = (traverseproc)BufferedAnext_traverse,
    .tp_clear = (inquiry)BufferedAnext_clear,
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway_proto._speedups",
    .m_doc = "The wire layer's hot path in C (optional; _wire_reader.py is the reference).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    str_op = PyUnicode_InternFromString("op");
    str_d = PyUnicode_InternFromString("d");
    str_s = PyUnicode_InternFromString("s");
    str_t = PyUnicode_InternFromString("t");
    str_decompress = PyUnicode_InternFromString("decompress");
    str_eof = PyUnicode_InternFromString("eof");
    str_unused_data = PyUnicode_InternFromString("unused_data");
    taken_marker = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (taken_marker == NULL) {
        return NULL;
    }
    if (!str_op || !str_d || !str_s || !str_t || !str_decompress || !str_eof || !str_unused_data
        || PyType_Ready(&ScannerType) < 0 || PyType_Ready(&SlotMakerType) < 0
        || PyType_Ready(&NextType) < 0 || PyType_Ready(&BufferedAnextType) < 0) {
        return NULL;
    }
    str_wait_next = PyUnicode_InternFromString("_wait_next");
    str_throw = PyUnicode_InternFromString("throw");
    str_close = PyUnicode_InternFromString("close");
    PyObject *collections = PyImport_ImportModule("collections");
    if (str_wait_next == NULL || str_throw == NULL || str_close == NULL || collections == NULL) {
        Py_XDECREF(collections);
        return NULL;
    }
    PyObject *deque = PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (deque == NULL) {
        return NULL;
    }
    deque_popleft = PyObject_GetAttrString(deque, "popleft");
    Py_DECREF(deque);
    if (deque_popleft == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(module, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&SlotMakerType);
    if (PyModule_AddObject(module, "SlotMaker", (PyObject *)&SlotMakerType) < 0) {
        Py_DECREF(&SlotMakerType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&BufferedAnextType);
    if (PyModule_AddObject(module, "BufferedAnext", (PyObject *)&BufferedAnextType) < 0) {
        Py_DECREF(&BufferedAnextType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
