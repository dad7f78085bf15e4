// Runs a GGUF model through llama.cpp and dumps what hearth's logits fixtures
// compare against: the logits of every position of one prompt (decoded as a
// single batch), then the ids of a greedy continuation (one token per decode).
//
// Built and run by gen.py against a local llama.cpp build; never built in CI.
//
//   dump_logits MODEL TOKENS N_GEN OUT.f32
//     TOKENS   comma-separated prompt token ids
//     OUT.f32  n_prompt * n_vocab little-endian f32 logits
//   stdout: the N_GEN greedy token ids, comma-separated

#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level, const char *, void *) {}

static int argmax(const float * x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (x[i] > x[best]) best = i;
    }
    return best;
}

int main(int argc, char ** argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s MODEL TOKENS N_GEN OUT.f32 [KV_TYPE]\n", argv[0]);
        return 2;
    }
    // KV_TYPE q8_0 or q4_0: a quantized K and V cache (-ctk/-ctv), which
    // llama.cpp reads only with flash attention (-fa on).
    ggml_type kv_type = GGML_TYPE_F16;
    if (argc == 6) {
        const std::string t = argv[5];
        if (t == "q8_0") kv_type = GGML_TYPE_Q8_0;
        else if (t == "q4_0") kv_type = GGML_TYPE_Q4_0;
        else if (t != "f16") { fprintf(stderr, "unknown KV type %s\n", t.c_str()); return 2; }
    }
    std::vector<llama_token> prompt;
    {
        std::stringstream ss(argv[2]);
        std::string item;
        while (std::getline(ss, item, ',')) prompt.push_back(std::atoi(item.c_str()));
    }
    const int n_gen = std::atoi(argv[3]);
    const int n_prompt = (int) prompt.size();

    llama_log_set(quiet, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    // No repacked or AMX weight layouts: plain ggml kernels on the file's bytes
    // (AMX also faults on machines that report but do not enable it).
    mp.use_extra_bufts = false;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_gen + 16;
    cp.n_batch = n_prompt;
    cp.n_ubatch = n_prompt;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    // The non-flash attention path for an f16 cache: hearth mirrors its f16
    // roundings. A quantized cache: the flash-attention path, which hearth
    // follows for such caches.
    cp.flash_attn_type = kv_type == GGML_TYPE_F16 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                                  : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    cp.type_k = kv_type;
    cp.type_v = kv_type;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }

    llama_batch batch = llama_batch_init(n_prompt, 0, 1);
    for (int i = 0; i < n_prompt; i++) {
        batch.token[i] = prompt[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n_prompt;
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }

    FILE * f = fopen(argv[4], "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", argv[4]); return 1; }
    for (int i = 0; i < n_prompt; i++) {
        fwrite(llama_get_logits_ith(ctx, i), sizeof(float), n_vocab, f);
    }
    fclose(f);

    int next = argmax(llama_get_logits_ith(ctx, n_prompt - 1), n_vocab);
    for (int i = 0; i < n_gen; i++) {
        printf(i ? ",%d" : "%d", next);
        llama_batch one = llama_batch_get_one(&next, 1);
        if (llama_decode(ctx, one) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        next = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
    }
    printf("\n");

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
