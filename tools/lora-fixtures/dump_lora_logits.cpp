// Runs a GGUF model with LoRA adapters through llama.cpp (what `--lora` and
// `--lora-scaled FILE SCALE` do: llama_adapter_lora_init, then
// llama_set_adapters_lora) and dumps the logits of every position of one
// prompt, decoded as a single batch, for hearth's LoRA fixtures.
//
// Built and run by gen.py against a local llama.cpp build; never built in CI.
//
//   dump_lora_logits MODEL TOKENS OUT.f32 [ADAPTER SCALE]...
//     TOKENS   comma-separated prompt token ids
//     OUT.f32  n_prompt * n_vocab little-endian f32 logits

#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc < 4 || (argc - 4) % 2 != 0) {
        fprintf(stderr, "usage: %s MODEL TOKENS OUT.f32 [ADAPTER SCALE]...\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> prompt;
    {
        std::stringstream ss(argv[2]);
        std::string item;
        while (std::getline(ss, item, ',')) prompt.push_back(std::atoi(item.c_str()));
    }
    const int n_prompt = (int) prompt.size();

    llama_log_set(quiet, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    // Plain ggml kernels on the file's bytes, as dump_logits.cpp.
    mp.use_extra_bufts = false;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    std::vector<llama_adapter_lora *> adapters;
    std::vector<float> scales;
    for (int i = 4; i < argc; i += 2) {
        llama_adapter_lora * a = llama_adapter_lora_init(model, argv[i]);
        if (!a) { fprintf(stderr, "cannot load adapter %s\n", argv[i]); return 1; }
        adapters.push_back(a);
        scales.push_back((float) std::atof(argv[i + 1]));
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + 16;
    cp.n_batch = n_prompt;
    cp.n_ubatch = n_prompt;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    // The non-flash attention path: hearth mirrors its f16 roundings.
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }
    if (!adapters.empty() &&
        llama_set_adapters_lora(ctx, adapters.data(), adapters.size(), scales.data()) != 0) {
        fprintf(stderr, "cannot set adapters\n");
        return 1;
    }

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

    FILE * f = fopen(argv[3], "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }
    for (int i = 0; i < n_prompt; i++) {
        fwrite(llama_get_logits_ith(ctx, i), sizeof(float), n_vocab, f);
    }
    fclose(f);

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
