import streamlit as st

st.title("3_descendants")
st.info("Coming soon.")
