"""difficulty"""
