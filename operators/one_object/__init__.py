"""A photo and a mask to one object: Reconstruct and Cancel (reconstruct), Refine (refine), the masks list, New
Mask, Split Label Map and Preview (masks), Auto Mask and Box to Mask (auto_masks), other views of the object for
the engines that take several (views).
"""
