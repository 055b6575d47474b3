#!/usr/bin/env python3
"""Drives libktcache's host C ABI from Python through ctypes.

Usage: test_capi_ctypes.py LIBKTCACHE.so [unittest arguments]

A language binding sees only the shared object and what ktcache.h says, so
this test declares every prototype and struct itself, as such a binding
would; a struct mirrored wrongly here shows up as garbage or a crash. It
uses the standard library only.
"""

import ctypes
import json
import os
import sys
import tempfile
import unittest

KTC_OK = 0
KTC_E_INVALID = -2
KTC_E_NOTFOUND = -3

KTC_ENTRY_VALID = 0
KTC_STORE_NO_STRIP = 1 << 0

c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_uint32 = ctypes.c_uint32
c_int32 = ctypes.c_int32
c_int64 = ctypes.c_int64
c_void_p = ctypes.c_void_p


class OpenOptions(ctypes.Structure):
    """ktc_open_options."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("root", c_char_p),
        ("store_lock_timeout_ms", c_uint32),
        ("shared_lock_timeout_ms", c_uint32),
    ]


class StoreOptions(ctypes.Structure):
    """ktc_store_options."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("image", c_char_p),
        ("vmlinux", c_char_p),
        ("config", c_char_p),
        ("image_name", c_char_p),
        ("arch", c_char_p),
        ("version", c_char_p),
        ("source_json", c_char_p),
        ("metadata_json", c_char_p),
        ("kconfig_hash", c_char_p),
        ("source_spec", c_char_p),
    ]


class EntryInfo(ctypes.Structure):
    """ktc_entry_info."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("state", c_int32),
        ("key", c_char_p),
        ("path", c_char_p),
        ("metadata_json", c_char_p),
        ("image_path", c_char_p),
        ("vmlinux_path", c_char_p),
        ("config_path", c_char_p),
        ("error_kind", c_char_p),
        ("reason", c_char_p),
        ("last_used", c_int64),
        ("leased", c_int32),
    ]


# Sizes and offsets ktcache.h gives on x86_64 (LP64); a binding whose
# mirror drifted from the header would pass a wrong struct_size.
LP64_LAYOUT = {
    OpenOptions: (24, {"root": 8, "store_lock_timeout_ms": 16,
                       "shared_lock_timeout_ms": 20}),
    StoreOptions: (88, {"image": 8, "source_spec": 80}),
    EntryInfo: (88, {"key": 8, "reason": 64, "last_used": 72,
                     "leased": 80}),
}


def load_library(path):
    lib = ctypes.CDLL(path)
    cache_p = c_void_p
    entry_p = c_void_p
    list_p = c_void_p
    prototypes = {
        "ktc_version": (c_char_p, []),
        "ktc_error_message": (c_char_p, []),
        "ktc_free": (None, [c_void_p]),
        "ktc_cache_open": (c_int, [ctypes.POINTER(cache_p),
                                   ctypes.POINTER(OpenOptions)]),
        "ktc_cache_free": (None, [cache_p]),
        "ktc_cache_root": (c_char_p, [cache_p]),
        "ktc_store": (c_int, [ctypes.POINTER(entry_p), cache_p, c_char_p,
                              ctypes.POINTER(StoreOptions)]),
        "ktc_lookup": (c_int, [ctypes.POINTER(entry_p), cache_p, c_char_p,
                               c_uint32]),
        "ktc_entry_get_info": (c_int, [entry_p, ctypes.POINTER(EntryInfo)]),
        "ktc_entry_free": (None, [entry_p]),
        "ktc_list_entries": (c_int, [ctypes.POINTER(list_p), cache_p]),
        "ktc_list_count": (c_size_t, [list_p]),
        "ktc_list_at": (entry_p, [list_p, c_size_t]),
        "ktc_list_free": (None, [list_p]),
        "ktc_default_root": (c_int, [ctypes.POINTER(c_void_p)]),
    }
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


LIB = None


def error_message():
    return LIB.ktc_error_message().decode("utf-8", "replace")


def entry_info(entry):
    info = EntryInfo()
    info.struct_size = ctypes.sizeof(EntryInfo)
    info.last_used = -1
    status = LIB.ktc_entry_get_info(entry, ctypes.byref(info))
    if status != KTC_OK:
        raise AssertionError(
            f"ktc_entry_get_info: {status}: {error_message()}")
    return info


class CApiTest(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.TemporaryDirectory(prefix="ktc-ctypes-")
        self.addCleanup(self.work.cleanup)
        self.root = os.path.join(self.work.name, "cache").encode()
        options = OpenOptions()
        options.struct_size = ctypes.sizeof(OpenOptions)
        options.root = self.root
        cache = c_void_p()
        status = LIB.ktc_cache_open(ctypes.byref(cache),
                                    ctypes.byref(options))
        self.assertEqual(status, KTC_OK, error_message())
        self.assertTrue(cache.value)
        self.cache = cache
        self.addCleanup(LIB.ktc_cache_free, cache)

    def input_file(self, name, data):
        path = os.path.join(self.work.name, name)
        with open(path, "wb") as out:
            out.write(data)
        return path.encode()

    def store(self, key, image=b"image bytes\n", vmlinux=None):
        options = StoreOptions()
        options.struct_size = ctypes.sizeof(StoreOptions)
        # The fake vmlinux is not ELF; no strip policy must touch it.
        options.flags = KTC_STORE_NO_STRIP
        options.image = self.input_file("bzImage", image)
        if vmlinux is not None:
            options.vmlinux = self.input_file("vmlinux", vmlinux)
        options.arch = b"x86_64"
        options.version = b"6.12.3"
        entry = c_void_p()
        status = LIB.ktc_store(ctypes.byref(entry), self.cache, key,
                               ctypes.byref(options))
        if status == KTC_OK:
            self.addCleanup(LIB.ktc_entry_free, entry)
        return status, entry

    def test_version_matches_header(self):
        version = LIB.ktc_version()
        self.assertIsNotNone(version)
        parts = version.decode().split(".")
        self.assertEqual(len(parts), 3, version)
        self.assertEqual(parts[0], "1")
        self.assertTrue(all(part.isdigit() for part in parts), version)

    @unittest.skipUnless(ctypes.sizeof(c_void_p) == 8, "LP64 layout only")
    def test_struct_mirrors_have_header_layout(self):
        for struct, (size, offsets) in LP64_LAYOUT.items():
            self.assertEqual(ctypes.sizeof(struct), size, struct.__name__)
            for field, offset in offsets.items():
                self.assertEqual(getattr(struct, field).offset, offset,
                                 f"{struct.__name__}.{field}")

    def test_cache_root_is_the_one_opened(self):
        self.assertEqual(LIB.ktc_cache_root(self.cache), self.root)

    def test_store_then_list(self):
        status, entry = self.store(b"k-6.12.3-x86_64", vmlinux=b"vmlinux\n")
        self.assertEqual(status, KTC_OK, error_message())
        self.assertTrue(entry.value)
        stored = entry_info(entry)
        self.assertEqual(stored.key, b"k-6.12.3-x86_64")
        self.assertIsNotNone(stored.vmlinux_path)

        listing = c_void_p()
        status = LIB.ktc_list_entries(ctypes.byref(listing), self.cache)
        self.assertEqual(status, KTC_OK, error_message())
        self.addCleanup(LIB.ktc_list_free, listing)
        self.assertEqual(LIB.ktc_list_count(listing), 1)
        self.assertFalse(LIB.ktc_list_at(listing, 1))

        listed = LIB.ktc_list_at(listing, 0)
        self.assertTrue(listed)
        info = entry_info(listed)
        self.assertEqual(info.struct_size, ctypes.sizeof(EntryInfo))
        self.assertEqual(info.key, b"k-6.12.3-x86_64")
        self.assertEqual(info.state, KTC_ENTRY_VALID)
        self.assertIsNone(info.error_kind)
        self.assertIsNone(info.reason)
        self.assertEqual(info.path,
                         os.path.join(self.root, b"k-6.12.3-x86_64"))
        self.assertEqual(info.image_path,
                         os.path.join(info.path, b"bzImage"))
        with open(info.image_path, "rb") as image:
            self.assertEqual(image.read(), b"image bytes\n")
        self.assertIsNotNone(info.vmlinux_path)
        with open(info.vmlinux_path, "rb") as vmlinux:
            self.assertEqual(vmlinux.read(), b"vmlinux\n")
        self.assertIsNone(info.config_path)

        metadata = json.loads(info.metadata_json)
        self.assertIsInstance(metadata, dict)
        self.assertEqual(metadata["arch"], "x86_64")
        self.assertEqual(metadata["image_name"], "bzImage")
        self.assertEqual(metadata["version"], "6.12.3")
        self.assertIs(metadata["has_vmlinux"], True)

    def test_lookup_hit(self):
        status, _ = self.store(b"hit-key")
        self.assertEqual(status, KTC_OK, error_message())
        entry = c_void_p()
        status = LIB.ktc_lookup(ctypes.byref(entry), self.cache, b"hit-key",
                                0)
        self.assertEqual(status, KTC_OK, error_message())
        self.addCleanup(LIB.ktc_entry_free, entry)
        info = entry_info(entry)
        self.assertEqual(info.key, b"hit-key")
        self.assertEqual(info.state, KTC_ENTRY_VALID)
        self.assertEqual(json.loads(info.metadata_json)["arch"], "x86_64")
        self.assertIsNone(info.vmlinux_path)

    def test_lookup_miss_names_the_key(self):
        status, _ = self.store(b"present-key")
        self.assertEqual(status, KTC_OK, error_message())
        entry = c_void_p()
        status = LIB.ktc_lookup(ctypes.byref(entry), self.cache,
                                b"absent-key-7f3a", 0)
        self.assertEqual(status, KTC_E_NOTFOUND)
        # Output parameters are set only on success.
        self.assertFalse(entry.value)
        message = error_message()
        self.assertNotEqual(message, "")
        self.assertNotEqual(message, "no error")
        self.assertIn("absent-key-7f3a", message)
        self.assertNotIn("\n", message)

    def test_store_with_invalid_key_fails(self):
        status, entry = self.store(b"../escape")
        self.assertEqual(status, KTC_E_INVALID)
        self.assertFalse(entry.value)
        message = error_message()
        self.assertNotEqual(message, "")
        self.assertNotEqual(message, "no error")
        self.assertIn("../escape", message)

        # Nothing was written for the refused key.
        listing = c_void_p()
        status = LIB.ktc_list_entries(ctypes.byref(listing), self.cache)
        self.assertEqual(status, KTC_OK, error_message())
        self.addCleanup(LIB.ktc_list_free, listing)
        self.assertEqual(LIB.ktc_list_count(listing), 0)

    def test_library_strings_are_freed_with_ktc_free(self):
        previous = os.environ.get("KTCACHE_DIR")
        os.environ["KTCACHE_DIR"] = self.root.decode()
        try:
            out = c_void_p()
            status = LIB.ktc_default_root(ctypes.byref(out))
        finally:
            if previous is None:
                del os.environ["KTCACHE_DIR"]
            else:
                os.environ["KTCACHE_DIR"] = previous
        self.assertEqual(status, KTC_OK, error_message())
        try:
            self.assertEqual(ctypes.string_at(out.value), self.root)
        finally:
            LIB.ktc_free(out)


def main():
    global LIB
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} LIBKTCACHE.so [unittest args]",
              file=sys.stderr)
        return 2
    LIB = load_library(sys.argv[1])
    program = unittest.main(argv=[sys.argv[0], "-v", *sys.argv[2:]],
                            exit=False)
    result = program.result
    if not result.wasSuccessful() or result.testsRun == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
