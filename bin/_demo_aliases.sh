# Sourced by bin/run (and read by the SDK tests): the demo's model aliases. A seed model whose provider has no key
# here is answered by the built-in offline model, so the SDKs' default model (gpt-4o, in pinecone 8.x, 9.x and
# 10.x alike) works on a fresh install; answers name the model that really answered (offline-extractive-1).
demo_model_aliases() {
    local models=() out="" model
    [ -n "${OPENAI_API_KEY:-}" ] || models+=(gpt-4o gpt-4.1 o4-mini gpt-5)
    [ -n "${ANTHROPIC_API_KEY:-}" ] || models+=(claude-3-5-sonnet claude-3-7-sonnet claude-sonnet-4-5)
    [ -n "${GEMINI_API_KEY:-}" ] || models+=(gemini-2.5-pro)
    for model in "${models[@]}"; do
        out+="${out:+,}$model=offline"
    done
    printf '%s' "$out"
}
