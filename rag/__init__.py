"""Knowledge and answers: loading, chunking, embedding, retrieval, prompting, generation.

A library: it knows nothing of Sanic, Streamlit or the backend.
"""
