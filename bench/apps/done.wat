;; The benchmark's tiny WASM guest: reads all of stdin (the request) and answers with
;; the fixed protocol-v1 response {"v": 1, "ops": [{"op": "done", "data": nil}]}
;; (24 bytes of msgpack). No parsing: it measures what running a guest costs, not
;; what the guest does.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0: iovec (ptr, len); 8: bytes done; 64: the response; 1024..: read buffer
  (data (i32.const 64) "\82\a1\76\01\a3\6f\70\73\91\82\a2\6f\70\a4\64\6f\6e\65\a4\64\61\74\61\c0")
  (func (export "_start")
    ;; Drain stdin, 64 KiB at a time, until end of input or an error.
    (block $eof
      (loop $more
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $eof (i32.eqz (i32.load (i32.const 8))))
        (br $more)))
    ;; One write of the 24-byte response (a short write to a pipe of 24 bytes does not happen).
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 24))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
