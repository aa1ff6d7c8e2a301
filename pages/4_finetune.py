import streamlit as st

st.title("4_finetune")
st.info("Coming soon.")
