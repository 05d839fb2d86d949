"""The replay fixtures of the provider streaming reference (Appendix A), byte for byte.

Served by `replay_server.ReplayServer` to the provider tests and cut at every offset by the SSE decoder tests.
"""

OPENAI_STREAM = (
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"tV3"}\n'
    b"\n"
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"k3P"}\n'
    b"\n"
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[{"index":0,"delta":{"content":" \xe2\x80\x94 h\xc3\xa9llo!"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"z"}\n'
    b"\n"
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null,"obfuscation":"mQ4a"}\n'
    b"\n"
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"8zQ"}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

OPENAI_MIDSTREAM_ERROR = (
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"tV3"}\n'
    b"\n"
    b'data: {"id":"chatcmpl-CY1kq3m4ExampleId","object":"chat.completion.chunk","created":1764150000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_8bda4d3a2c","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"k3P"}\n'
    b"\n"
    b'data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}\n'
    b"\n"
)

ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2,"service_tier":"standard"}}}\n'
    b"\n"
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n'
    b"\n"
    b"event: ping\n"
    b'data: {"type": "ping"}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" \xe2\x80\x94 h\xc3\xa9llo!"}}\n'
    b"\n"
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n'
    b"\n"
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}\n'
    b"\n"
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n'
    b"\n"
)

ANTHROPIC_MIDSTREAM_ERROR = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"output_tokens":2}}}\n'
    b"\n"
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n'
    b"\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}\n'
    b"\n"
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n'
    b"\n"
)

GEMINI_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 8,"totalTokenCount": 8,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 8}]},"modelVersion": "gemini-2.5-flash","responseId": "mJ0maeXkB8SbkdUPk8qIiA4"}\r\n'
    b"\r\n"
    b'data: {"candidates": [{"content": {"parts": [{"text": " \xe2\x80\x94 h\xc3\xa9llo!"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 8,"candidatesTokenCount": 6,"totalTokenCount": 35,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 8}],"thoughtsTokenCount": 21},"modelVersion": "gemini-2.5-flash","responseId": "mJ0maeXkB8SbkdUPk8qIiA4"}\r\n'
    b"\r\n"
)

GEMINI_MIDSTREAM_ERROR = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Hel"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 8,"totalTokenCount": 8},"modelVersion": "gemini-2.5-flash","responseId": "mJ0maeXkB8SbkdUPk8qIiA4"}\r\n'
    b"\r\n"
    b"{\n"
    b'  "error": {\n'
    b'    "code": 503,\n'
    b'    "message": "The model is overloaded. Please try again later.",\n'
    b'    "status": "UNAVAILABLE"\n'
    b"  }\n"
    b"}\n"
)

VLLM_STREAM = (
    b'data: {"id":"chatcmpl-8d2c1f0e4b7a4e0f9a3b","object":"chat.completion.chunk","created":1764150000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n'
    b"\n"
    b'data: {"id":"chatcmpl-8d2c1f0e4b7a4e0f9a3b","object":"chat.completion.chunk","created":1764150000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}\n'
    b"\n"
    b'data: {"id":"chatcmpl-8d2c1f0e4b7a4e0f9a3b","object":"chat.completion.chunk","created":1764150000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":" there!"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}\n'
    b"\n"
    b'data: {"id":"chatcmpl-8d2c1f0e4b7a4e0f9a3b","object":"chat.completion.chunk","created":1764150000,"model":"Qwen/Qwen3-8B","choices":[],"usage":{"prompt_tokens":11,"total_tokens":14,"completion_tokens":3}}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

VLLM_MIDSTREAM_ERROR = (
    b'data: {"id":"chatcmpl-8d2c1f0e4b7a4e0f9a3b","object":"chat.completion.chunk","created":1764150000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n'
    b"\n"
    b'data: {"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

OLLAMA_STREAM = (
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1764150000,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}\n'
    b"\n"
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1764150000,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"content":" there!"},"finish_reason":null}]}\n'
    b"\n"
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1764150000,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n'
    b"\n"
    b'data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1764150000,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

LLAMACPP_STREAM = (
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1764150000,"id":"chatcmpl-Q2n8wK1yV7dJ0cX4mB9sT6rL3pZ5hG1a","model":"qwen3-8b","system_fingerprint":"b7150-1a2b3c4d","object":"chat.completion.chunk"}\n'
    b"\n"
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hello"}}],"created":1764150000,"id":"chatcmpl-Q2n8wK1yV7dJ0cX4mB9sT6rL3pZ5hG1a","model":"qwen3-8b","system_fingerprint":"b7150-1a2b3c4d","object":"chat.completion.chunk"}\n'
    b"\n"
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" there!"}}],"created":1764150000,"id":"chatcmpl-Q2n8wK1yV7dJ0cX4mB9sT6rL3pZ5hG1a","model":"qwen3-8b","system_fingerprint":"b7150-1a2b3c4d","object":"chat.completion.chunk"}\n'
    b"\n"
    b'data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1764150000,"id":"chatcmpl-Q2n8wK1yV7dJ0cX4mB9sT6rL3pZ5hG1a","model":"qwen3-8b","system_fingerprint":"b7150-1a2b3c4d","object":"chat.completion.chunk"}\n'
    b"\n"
    b'data: {"choices":[],"created":1764150000,"id":"chatcmpl-Q2n8wK1yV7dJ0cX4mB9sT6rL3pZ5hG1a","model":"qwen3-8b","system_fingerprint":"b7150-1a2b3c4d","object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":11,"total_tokens":14},"timings":{"prompt_n":11,"prompt_ms":21.4,"prompt_per_token_ms":1.95,"prompt_per_second":514.0,"predicted_n":3,"predicted_ms":38.2,"predicted_per_token_ms":12.7,"predicted_per_second":78.5}}\n'
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)

LLAMACPP_MIDSTREAM_ERROR = (
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1764150000,"id":"chatcmpl-Q2n8wK1yV7dJ0cX4mB9sT6rL3pZ5hG1a","model":"qwen3-8b","system_fingerprint":"b7150-1a2b3c4d","object":"chat.completion.chunk"}\n'
    b"\n"
    b'data: {"error":{"code":500,"message":"failed to decode the batch","type":"server_error"}}\n'
    b"\n"
)

PINECONE_CC_STREAM = (
    b'data:{"id":"00000000000000005d487d0ba0cde006","model":"gpt-4o-2024-11-20","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n'
    b"\n"
    b'data:{"id":"00000000000000005d487d0ba0cde006","model":"gpt-4o-2024-11-20","choices":[{"index":0,"delta":{"role":null,"content":"The sky is blue [1, pp. 1]."},"finish_reason":null}]}\n'
    b"\n"
    b'data:{"id":"00000000000000005d487d0ba0cde006","model":"gpt-4o-2024-11-20","choices":[{"index":0,"delta":{"role":null,"content":null},"finish_reason":"stop"}]}\n'
    b"\n"
)

ALL = {name: value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, bytes)}
