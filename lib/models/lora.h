/*
 * lora.h — merges a llama.cpp-style LoRA adapter GGUF (docs/format.md §2) into a loaded
 * llama_model: W += scale·B·A for every pair `<weight>.lora_a` / `<weight>.lora_b`.
 */
#ifndef PG_LORA_H
#define PG_LORA_H

#include "models/llama.h"

/* Opens the adapter at path, checks it completely (keys general.architecture "llama",
 * general.type "adapter", adapter.type "lora"; every tensor a lora_a/lora_b pair of a 2-D
 * weight m has — blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight or
 * output.weight — with matching shapes and rank), then merges in float32 with
 * scale = user_scale·alpha/r (adapter.lora.alpha; missing or 0: scale = user_scale), llama.cpp's
 * rule. Each merged matrix is a new heap copy in the base weight's type that m owns
 * (m->lora_store); the pg_weight then points at it and the mapped original is left as it was,
 * so a tied output never changes token_embd. A scale of 0 checks the adapter and changes
 * nothing. The adapter file is closed before returning.
 * Errors: PG_ERR_IO (cannot open), PG_ERR_FORMAT (wrong key, stray or unpaired tensor, unknown
 * base weight, shape or rank mismatch — the message names the adapter file and the key or
 * tensor), PG_ERR_UNSUPPORTED (tensor type), PG_ERR_OUT_OF_MEMORY. On any error m is unchanged. */
pg_status llama_lora_apply(llama_model *m, const char *path, float user_scale);

#endif
