;; A Sluice function written in WebAssembly text, with no SDK: it speaks guest
;; protocol v1 (docs/protocol.md) itself, one-shot: the msgpack request is all of
;; stdin, the msgpack response all of stdout, logs go to stderr.
;;
;; introspect -> {"v": 1, "app": "polyglot", "functions": [{"id": "echo-size",
;;                "name": "Echo the request size",
;;                "triggers": [{"event": "demo/ping", "if": nil}],
;;                "retries": 0, "timeout_ms": nil}]}
;; call       -> {"v": 1, "ops": [{"op": "done",
;;                "data": {"language": "wat", "bytes_read": <request size>}}]}
;; not a msgpack map -> a line on stderr and exit code 2 (as the Python shim does).
;;
;; Run it: sluice dev with the wasm sandbox, or sandboxes.wasm.WasmSandbox with
;; Target("module", "examples/wasm/polyglot.wat"). wasmtime compiles the text directly.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; 0..64 KiB: scratch and constants; 64 KiB..: the request (up to 8 MiB).
  (memory (export "memory") 129)
  (global $req i32 (i32.const 65536))
  (global $req_max i32 (i32.const 8388608))

  ;; scratch: iovec at 0 (ptr, len), count at 8, response buffer at 1024
  (data (i32.const 64) "\a4kind\aaintrospect")  ;; msgpack "kind", "introspect" (16 bytes)
  (data (i32.const 128)
    "\83\a1v\01\a3app\a8polyglot\a9functions\91\85\a2id\a9echo-size\a4name\b5Echo the request size\a8triggers\91\82\a5event\a9demo/ping\a2if\c0\a7retries\00\aatimeout_ms\c0")
  (global $intro_len i32 (i32.const 121))
  (data (i32.const 512)
    "\82\a1v\01\a3ops\91\82\a2op\a4done\a4data\82\a8language\a3wat\aabytes_read\ce")
  (global $call_len i32 (i32.const 49))  ;; followed by the size as a big-endian u32
  (data (i32.const 768) "polyglot: the request is not a msgpack map\n")
  (global $bad_len i32 (i32.const 43))

  ;; Write len bytes at ptr to fd, all of them.
  (func $write_all (param $fd i32) (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (br_if $done (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
        (br $more))))

  ;; Read all of stdin into $req; return its size.
  (func $read_all (result i32)
    (local $n i32)
    (block $eof
      (loop $more
        (br_if $eof (i32.ge_u (local.get $n) (global.get $req_max)))
        (i32.store (i32.const 0) (i32.add (global.get $req) (local.get $n)))
        (i32.store (i32.const 4) (i32.sub (global.get $req_max) (local.get $n)))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (local.set $n (i32.add (local.get $n) (i32.load (i32.const 8))))
        (br $more)))
    (local.get $n))

  ;; Whether the 16 bytes at 64 occur in the request: its "kind" is "introspect".
  (func $is_introspect (param $n i32) (result i32)
    (local $i i32) (local $j i32)
    (block $no
      (loop $at
        (br_if $no (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $cmp
            (br_if $mismatch
              (i32.ne (i32.load8_u (i32.add (i32.add (global.get $req) (local.get $i)) (local.get $j)))
                      (i32.load8_u (i32.add (i32.const 64) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $cmp (i32.lt_u (local.get $j) (i32.const 16))))
          (return (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $at)))
    (i32.const 0))

  (func (export "_start")
    (local $n i32) (local $first i32)
    (local.set $n (call $read_all))
    ;; a msgpack map starts with 0x80..0x8f (fixmap), 0xde or 0xdf
    (local.set $first (if (result i32) (local.get $n) (then (i32.load8_u (global.get $req))) (else (i32.const 0))))
    (if (i32.eqz (i32.or (i32.eq (i32.and (local.get $first) (i32.const 0xf0)) (i32.const 0x80))
                         (i32.eq (i32.or (local.get $first) (i32.const 1)) (i32.const 0xdf))))
      (then
        (call $write_all (i32.const 2) (i32.const 768) (global.get $bad_len))
        (call $proc_exit (i32.const 2))))
    (if (call $is_introspect (local.get $n))
      (then (call $write_all (i32.const 1) (i32.const 128) (global.get $intro_len)))
      (else
        ;; response = prefix, then the size as a big-endian u32
        (memory.copy (i32.const 1024) (i32.const 512) (global.get $call_len))
        (i32.store8 (i32.add (i32.const 1024) (global.get $call_len)) (i32.shr_u (local.get $n) (i32.const 24)))
        (i32.store8 (i32.add (i32.const 1025) (global.get $call_len)) (i32.shr_u (local.get $n) (i32.const 16)))
        (i32.store8 (i32.add (i32.const 1026) (global.get $call_len)) (i32.shr_u (local.get $n) (i32.const 8)))
        (i32.store8 (i32.add (i32.const 1027) (global.get $call_len)) (local.get $n))
        (call $write_all (i32.const 1) (i32.const 1024) (i32.add (global.get $call_len) (i32.const 4)))))))
