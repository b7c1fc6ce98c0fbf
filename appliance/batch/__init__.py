"""The OpenAI Batch API: uploaded files, batches of requests run at low priority through the gate, their results."""
