import streamlit as st

st.title("5_runs")
st.info("Coming soon.")
