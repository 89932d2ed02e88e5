"""image2model ui_gradio (see its issue)."""
